"""``vmigrate keep`` refuses bad input in one line, exit 2, and starts nothing.

A params file whose hosts are not reached over SSH has nothing to keep; a keeper folder
that is not the operator's own (mode loosened, another owner, a symlink) is refused, never
repaired.  No host is needed: both are refused before any login.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def vmigrate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args],
                          capture_output=True, text=True, timeout=120, check=False, env=env)


def params(tmp_path: Path, **source: str) -> Path:
    host = {"type": "lab", "host": "esx-a", "lab_root": str(tmp_path / "lab")}
    pf = tmp_path / "params.yaml"
    pf.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "operator": "t", "downtime_budget": "30s",
        "source": {**host, **source}, "destination": {**host, "host": "esx-b"},
        "workspace": str(tmp_path / "ws")}))
    return pf


def test_nothing_to_keep_is_bad_input(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    r = vmigrate("keep", "start", "-p", str(params(tmp_path)),
                 env={**os.environ, "XDG_RUNTIME_DIR": str(run)})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "nothing to keep" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (run / "vmigrate").exists()


def test_a_loose_keeper_folder_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "vmigrate").mkdir(parents=True)
    os.chmod(run / "vmigrate", 0o755)
    pf = params(tmp_path, url="ssh://root@192.0.2.1:22")  # never reached: refused before
    r = vmigrate("keep", "start", "-p", str(pf), env={**os.environ, "XDG_RUNTIME_DIR": str(run)})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "mode 0700" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert os.stat(run / "vmigrate").st_mode & 0o777 == 0o755  # not repaired
    assert list((run / "vmigrate").iterdir()) == []
    r = vmigrate("keep", "status", env={**os.environ, "XDG_RUNTIME_DIR": str(run)})
    assert r.returncode == 2 and "mode 0700" in r.stderr, r.stdout + r.stderr
