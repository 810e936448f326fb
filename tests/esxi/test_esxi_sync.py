"""A running VM on an ``esxi`` host syncs to a lab host: preflight, seed, one delta.

Proves the engine drives an EsxiHost like any host, over real parts: sshd in a
network namespace with busybox as the login shell, ESXi's commands (the peer), the
lab's guest writing while snapshots freeze its disk, the agent uploaded and run over
the same SSH login.  No change tracking through vim-cmd, so each delta is found by
hash-compare, and every cycle certifies the copy identical to the snapshot.  The whole
migration (cutover, both runbooks, direct mode, kill/resume) over esxi on both sides is
issue 12 item 5; what only a real ESXi host shows is in tests/esxi/test_esxi_host.py.
"""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.esxi.conftest import EsxiLab
from vmigrate_lib.lab.workload import WorkloadSpec


def test_preflight_and_two_cycles_from_an_esxi_host(esxi_lab: EsxiLab) -> None:
    lab = esxi_lab.lab
    lab.host().set_workload("alice", WorkloadSpec(rate_mb_s=0.2))
    lab.host().power_on("alice")
    params = lab.raw_params(source=esxi_lab.peer.host_params())
    params["source"] = esxi_lab.peer.host_params()  # not merged with the lab's keys
    path = lab.workdir / "esxi.yaml"
    path.write_text(yaml.safe_dump(params))

    def vmigrate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args, "-p",
                               str(path)], cwd=lab.workdir, capture_output=True, text=True,
                              timeout=600)

    r = vmigrate("preflight")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "disk chain: every disk on its base file" in r.stdout
    assert "hash-compare will be used" in r.stdout
    r = vmigrate("sync", "--cycles", "2")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert out.count("certify identical") == 2 and "hash-compare: disk 2000" in out
    creates = [c for c in esxi_lab.peer.calls() if c[1:2] == ["vmsvc/snapshot.create"]]
    assert len(creates) == 2 and all(c[-2:] == ["0", "0"] for c in creates)
    assert esxi_lab.lab.host().list_snapshots("alice") == []  # each cycle removed its own
