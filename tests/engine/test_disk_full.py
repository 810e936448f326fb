"""A full workspace file system mid-command: one line, exit 1, and a re-run resumes.

The workspace lives on a real, tiny tmpfs; after a first sync the file system is
filled to the last byte, so the next command's first journal or state write
gets ENOSPC from the kernel (write(2): "ENOSPC: the device containing the file
... has no room for the data").  A real ESXi host plays no part: the workspace is
always local to the machine running vmigrate.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "wsfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs for the workspace")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(fs: Path) -> Path:
    """Write until the file system refuses: every block is taken."""
    filler = fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\xff" * 4096
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


def test_full_workspace_filesystem(make_lab, small_fs: Path) -> None:
    lab = make_lab(power_on=False)
    params = lab.write_params(workspace=str(small_fs / "ws"))
    r = lab.cli("sync", "-p", str(params))
    assert r.returncode == 0, r.stderr
    state_path = small_fs / "ws" / "state.json"
    state = state_path.read_bytes()

    filler = fill(small_fs)
    r = lab.cli("sync", "-p", str(params))  # the engine's own state/journal writes
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("vmigrate: error: ") and "free space" in lines[0], lines
    assert state_path.read_bytes() == state  # the recorded state is intact...
    assert json.loads(state)["cycles"] == 1
    assert lab.host().list_snapshots("alice") == []  # ...and Alice has no snapshot left

    # the runbook face: the evidence archive is the first write (before any kernel)
    r = lab.cli("run", "sync", "-p", str(params), "--set", "change_id=CHG-FULL",
                "--set", "operator=tester")
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("vmigrate: error: no space left on a local file system"), lines
    assert "free space on the file system that holds the workspace" in lines[0]
    assert state_path.read_bytes() == state
    assert not any((small_fs / "ws" / "evidence").glob("*")), "a half archive was left"

    filler.unlink()
    r = lab.cli("sync", "-p", str(params))  # the same command again, with room: it resumes
    assert r.returncode == 0, r.stderr
    assert json.loads(state_path.read_bytes())["cycles"] == 2
