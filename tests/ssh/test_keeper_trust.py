"""A host key accepted unverified by the keeper's login is still in the command's journal.

``allow_unknown_host_key: true`` is journaled with the fingerprint seen (test_unverified_
journal.py).  Through a connection keeper the command never sees the key: the keeper's
login accepted it, so the keeper hands the notice on with each agent, and the command's
journal gets the same ``unverified_peer`` record, once.  Before: no record (the evidence
would have hidden the choice).  A real ESXi host differs only in the key it offers.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labkit import alice_on_a, run_cli, unknown_key_params
from tests.peers.sshd import SshHost
from vmigrate_lib.dataplane.keep.control import keepers

MiB = 1 << 20


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (4 * MiB,)) as root:
        yield root


def test_an_unverified_key_is_journaled_through_the_keeper(
        ssh_loopback: SshHost, lab: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = ssh_loopback
    run = Path(tempfile.mkdtemp(prefix="vmg-keep-run-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    ws = tmp_path / "ws"
    pf = unknown_key_params(h, lab, tmp_path)
    try:
        r = run_cli(pf, "keep", "start", "--for", "5m")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "not kept: destination esx-b" in r.stdout, r.stdout  # a local lab host
        r = run_cli(pf, "sync", "--cycles", "1")
        assert r.returncode == 0, r.stdout + r.stderr
        (st,) = keepers()[0].values()
        assert st["hosts"][0]["served"] >= 1, st  # the command took its agent there
    finally:
        for st in keepers()[0].values():
            os.kill(int(st["pid"]), signal.SIGTERM)
    records = [json.loads(x) for x in (ws / "journal.jsonl").read_text().splitlines()]
    seen = [x for x in records if x["type"] == "unverified_peer"]
    assert len(seen) == 1, seen
    assert seen[0]["fingerprint"] == h.host_key_fingerprint_sha256, seen
    assert seen[0]["setting"] == "allow_unknown_host_key: true"
