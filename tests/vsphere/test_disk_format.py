"""Bob's disks as Alice's (issue 11 item 7): provisioned like hers, space counted as the
destination will allocate it.

Alice's provisioning is what vSphere reports (VirtualDiskFlatVer2BackingInfo
``thinProvisioned``, ``eagerlyScrub``: thin, lazily or eagerly zeroed thick), set on
the simulated host by the peer (tests/peers/vcsim/realhost.go).  On the destination
the agent creates Bob's disk with ``vmkfstools -c <size> -d <format>`` when the host
has it: here a fake on PATH (tests/peers/fake_vmkfstools.py) that records its
arguments and creates descriptor and extent as the vmkfstools documentation says
(thick: allocated at creation).  The real agent, engine and copy run.

What only a real ESXi host shows: that VMFS really pre-allocates and zeroes
(eagerzeroedthick) the extent, that vmkfstools accepts the ``<n>kb`` size form, and
that hole punching does not work there (the probe line says which).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.fake_vmkfstools import LOG_ENV, install
from tests.vsphere.simenv import CAP, SimEnv, sim_env
from tests.vsphere.test_preflight_real import disk_key, realhost
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.session import close_migration

SETTINGS = {
    "thin": {"thin": True, "eagerlyScrub": False},
    "zeroedthick": {"thin": False, "eagerlyScrub": False},
    "eagerzeroedthick": {"thin": False, "eagerlyScrub": True},
}


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path) -> Iterator[SimEnv]:
    with sim_env(tmp_path, vcsim_binary) as e:
        yield e


@pytest.fixture
def vmkfstools_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A vmkfstools on PATH for the agents this test starts; its calls land in the log."""
    log = tmp_path / "vmkfstools.jsonl"
    exe = install(tmp_path / "esxi-bin", log)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(LOG_ENV, str(log))
    return log


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.mark.parametrize("fmt", list(SETTINGS))
def test_bob_is_created_as_alice_is_provisioned(env: SimEnv, vmkfstools_log: Path,
                                                fmt: str) -> None:
    """Before: Bob's flat file was ftruncate'd (thin, 2 grains allocated) whatever Alice
    was, and vmkfstools was never called."""
    realhost(env.src, op="disk", vm="alice", key=disk_key(env), **SETTINGS[fmt])
    m = env.migration(allow_enable_cbt=True)
    try:
        report = run_preflight(m, raise_on_failure=False)
        lines = [c.detail for c in report.checks if c.name == "storage"]
        assert any(d.startswith("[dstds]") and "vmkfstools yes" in d for d in lines), lines
        with m.workspace:
            out = run_cycles(m, 1)
        assert out[0].record["certify"]["result"] == "identical"
    finally:
        close_migration(m)
    calls = [json.loads(x) for x in vmkfstools_log.read_text().splitlines()]
    descriptor = os.path.realpath(env.root / "dstds" / "bob" / "bob.vmdk")
    assert calls == [["-c", f"{CAP // 1024}kb", "-d", fmt, descriptor]]
    if fmt == "thin":
        assert allocated(env.bob_flat) < CAP
    else:  # thick: allocated in full, and the seed's holes did not punch it thin again
        assert allocated(env.bob_flat) >= CAP
    assert env.bob_flat.read_bytes() == env.disk.flat.read_bytes()


def test_without_vmkfstools_the_copy_is_sparse(env: SimEnv) -> None:
    """A host without vmkfstools (a lab, Linux): today's path, a sparse file."""
    realhost(env.src, op="disk", vm="alice", key=disk_key(env), **SETTINGS["zeroedthick"])
    m = env.migration(allow_enable_cbt=True)
    try:
        with m.workspace:
            run_cycles(m, 1)
    finally:
        close_migration(m)
    assert allocated(env.bob_flat) < CAP
    assert not (env.root / "dstds" / "bob" / "bob.vmdk").exists()


@pytest.mark.parametrize("fmt", list(SETTINGS))
def test_space_check_counts_what_the_destination_allocates(env: SimEnv, fmt: str) -> None:
    """Thick: the capacity (before: Alice's allocated bytes, 2 grains of a 4 MiB disk);
    thin: what Alice has allocated (both sides skip zeros here)."""
    realhost(env.src, op="disk", vm="alice", key=disk_key(env), **SETTINGS[fmt])
    m = env.migration(allow_enable_cbt=True)
    try:
        report = run_preflight(m, raise_on_failure=False)
    finally:
        close_migration(m)
    want = allocated(env.disk.flat) if fmt == "thin" else CAP
    assert report.bytes_needed == want
    assert allocated(env.disk.flat) < CAP  # the source really is sparse
