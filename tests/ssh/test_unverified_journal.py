"""``allow_unknown_host_key: true`` is journaled with the host key fingerprint seen.

The whole path through the CLI: a lab whose source datastores are served by a
real OpenSSH sshd, a known_hosts that does not list it, and the parameter that
accepts it anyway.  ``vmigrate preflight`` writes nothing (no workspace);
``vmigrate sync`` journals one ``unverified_peer`` record carrying the key's
``SHA256:`` fingerprint exactly as ``ssh-keygen -l`` prints it, so the evidence
shows what was accepted.  A real ESXi host differs only in the key it offers
(its /etc/ssh keys; RSA or ECDSA, Broadcom KB 313767).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labkit import alice_on_a, run_cli, unknown_key_params
from tests.peers.sshd import SshHost

MiB = 1 << 20


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (4 * MiB,)) as root:
        yield root


def test_unknown_host_key_accepted_is_journaled(ssh_loopback: SshHost, lab: Path,
                                                tmp_path: Path) -> None:
    h = ssh_loopback
    ws = tmp_path / "ws"
    pf = unknown_key_params(h, lab, tmp_path)
    r = run_cli(pf, "preflight")
    assert r.returncode == 0, r.stderr
    assert not ws.exists()  # preflight is pure: the choice waits for a run that writes
    r = run_cli(pf, "sync", "--cycles", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    records = [json.loads(x) for x in (ws / "journal.jsonl").read_text().splitlines()]
    seen = [x for x in records if x["type"] == "unverified_peer"]
    assert len(seen) == 1, seen  # reconnects and both uses of the host: one record
    rec = seen[0]
    assert rec["kind"] == "ssh_host_key" and rec["setting"] == "allow_unknown_host_key: true"
    assert rec["host"] == h.ip and rec["port"] == h.port
    assert rec["fingerprint"] == h.host_key_fingerprint_sha256, rec
    assert [x["type"] for x in records].index("unverified_peer") <= 2, records[:4]
