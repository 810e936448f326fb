"""End to end through the CLI: the lab's two hosts serve their datastores over real sshd.

Host a and host b are sshd in network namespaces (fixture ``ssh_hosts``, links
1 Gbit/s, 1 ms); the lab control plane is local, the data plane goes over SSH
(``url: ssh://...``).  Alice writes all along; ``vmigrate sync --cycles 3``,
``vmigrate certify`` and ``vmigrate cutover`` run as an operator would run them,
once with the data relayed through this machine and once direct (host a's
agent streams to host b's itself).  Bob must boot with every block Alice
acknowledged.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.labkit import alice_on_a, run_cli
from tests.ssh.sshdp import write_lab_params
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.verify import verify_copy
from vmigrate_lib.lab.workload import WorkloadSpec

pytestmark = [pytest.mark.netns, pytest.mark.slow]

MiB = 1 << 20
DISKS = ((2000, "alice-flat.vmdk", "bob-flat.vmdk"), (2001, "alice_1-flat.vmdk", "bob_1-flat.vmdk"))

if TYPE_CHECKING:
    from tests.ssh.sshdp import SshHosts


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (16 * MiB, 8 * MiB),
                    WorkloadSpec(rate_mb_s=2.0, ack_interval=0.2)) as root:
        yield root


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


@pytest.mark.parametrize("mode", ["relay", "direct"])
def test_sync_certify_cutover_over_ssh(ssh_hosts: SshHosts, lab: Path, tmp_path: Path,
                                       mode: str) -> None:
    pf = write_lab_params(ssh_hosts, lab, tmp_path, mode, ssh_compress="auto")

    if mode == "direct":
        # a direct route that cannot work is a preflight error, before anything changes
        bad = tmp_path / "bad.yaml"
        bad.write_text(pf.read_text().replace(ssh_hosts.peer_key.path, "/nonexistent/key"))
        r = run_cli(bad, "preflight")
        assert r.returncode != 0 and "cannot stream to esx-b itself" in r.stderr, r.stderr
        assert "[FAIL] transfer mode: " in r.stdout + r.stderr
        assert not (tmp_path / "ws").exists()

    out = ok(run_cli(pf, "sync", "--cycles", "3", "--interval", "0.3s"))
    assert f"transfer mode: [datastore1] -> [datastore1]: {mode} (requested)" in out, out
    line = next(x for x in out.splitlines() if "transfer mode" in x)
    if mode == "relay":  # relay asked for: direct mode's probe could change nothing
        assert line.endswith("; direct not probed"), line
    else:
        assert "relay possible" in line, line
    assert "certify identical" in out
    # the deltas' certify took the source's digests from the copy's stream (relay and
    # direct alike): the frozen source was read once (issue 13 item 2)
    recs = [json.loads(x) for x in (tmp_path / "ws" / "journal.jsonl").read_text().splitlines()]
    deltas = [r for r in recs if r.get("type") == "cycle" and r.get("kind") == "delta"]
    sources = {d["source"] for r in deltas for d in r["certify"]["disks"].values()
               if d.get("bytes")}
    assert sources == {"streamed"}, [r["certify"] for r in deltas]
    out = ok(run_cli(pf, "certify"))
    assert out.count(": identical") == len(DISKS), out

    out = ok(run_cli(pf, "cutover", "--probe-host", "127.0.0.1", "--shutdown-time", "1s",
                      "--boot-time", "1s"))
    b = LabHost(lab, "esx-b")
    assert LabHost(lab, "esx-a").power_state("alice") == PowerState.OFF
    assert b.power_state("bob") == PowerState.ON
    bob = b.guest_status("bob")
    assert bob is not None and bob["boot"]["ok"], bob  # Bob's own boot check
    alice_dir = LabHost(lab, "esx-a").vm_dir("alice")
    bob_dir = b.layout.datastore_dir("esx-b", "datastore1") / "bob"
    for key, _af, bf in DISKS:  # every block Alice acknowledged is on Bob (he writes now too)
        rep = verify_copy(bob_dir / bf, alice_dir / f"acks-{key}.bin", exact=False)
        assert rep.ok and rep.acked > 0, rep.problems()
