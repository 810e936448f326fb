"""A VM already running on a delta disk is refused, never copied from its stale base
(issue 11 item 2).

On ESXi a failed or interrupted consolidation leaves a VM running on
``alice-000001.vmdk`` while its snapshot tree is empty and
``runtime.consolidationNeeded`` is set (vSphere API reference,
VirtualMachineRuntimeInfo.consolidationNeeded: "Whether any disk of the
virtual machine requires consolidation ... typically required after a
snapshot has been deleted but its associated disk is not committed back to
the base disk"; consolidation is VirtualMachine.ConsolidateVMDisks_Task;
"hidden snapshots": VMs running off delta files the Snapshot Manager does not
show).  The base file then lacks the newest writes; copying it and certifying
it against itself approves a stale copy.  A disk is a delta when its backing
has a ``parent`` (VirtualDiskFlatVer2BackingInfo.parent, with
``deltaDiskFormat``), whatever its file is called: a base disk may well be
named ``-000001.vmdk`` after a clone or a consolidation.

The peer puts a disk on a delta the way the host reports it (backing with a
parent, consolidationNeeded) and implements ConsolidateVMDisks_Task
(tests/peers/vcsim/chains.go).  What only a real host shows: the delta's
actual data and that ESXi's consolidation really merges it (the simulator
holds no disk data; here the base file is the VM's data throughout).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from tests.vsphere import vsim
from tests.vsphere.simenv import SimEnv, sim_env
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.engine.sync import run_cycles, start
from vmigrate_lib.errors import DiskChainError
from vmigrate_lib.session import close_migration


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path) -> Iterator[SimEnv]:
    with sim_env(tmp_path, vcsim_binary) as e:
        yield e


def disk_backing(env: SimEnv) -> tuple[int, str, str | None, bool]:
    """(key, fileName, parent's fileName, consolidationNeeded) as the host reports them."""
    with vsim.pyvmomi(env.src) as si:
        vm = vsim.vm(si, "alice")
        d = next(x for x in vm.config.hardware.device if isinstance(x, vim.vm.device.VirtualDisk))
        backing: Any = d.backing  # a flat or sparse file backing: fileName, parent
        parent = backing.parent.fileName if backing.parent is not None else None
        return d.key, backing.fileName, parent, bool(vm.runtime.consolidationNeeded)


def put_on_delta(env: SimEnv, consolidation_needed: bool) -> str:
    key, base, _, _ = disk_backing(env)
    delta = base.replace(".vmdk", "-000001.vmdk")
    env.src.control(op="disk", vm="alice", key=key, fileName=delta, parent=True,
                    consolidationNeeded=consolidation_needed)
    return delta


@pytest.mark.parametrize("flag", [True, False], ids=["consolidationNeeded", "parent-only"])
def test_preflight_refuses_a_vm_on_a_delta_and_changes_nothing(env: SimEnv, flag: bool) -> None:
    """Before: preflight passed and the seed copied alice-flat.vmdk, 'identical'."""
    delta = put_on_delta(env, flag)
    m = env.migration(allow_enable_cbt=True)
    try:
        report = run_preflight(m, raise_on_failure=False)
        check = next(c for c in report.checks if c.name == "disk chain")
        assert not check.ok and delta in check.detail
        with m.workspace, pytest.raises(DiskChainError) as info:
            start(m)
        line = info.value.one_line()
        assert info.value.exit_code == 2 and "\n" not in line
        assert delta in line and "stale" in line and "Consolidate" in line, line
        assert m.source.list_snapshots("alice") == []
        assert not m.workspace.state_path.exists()
        assert not env.bob_flat.exists()
    finally:
        close_migration(m)
    assert disk_backing(env)[1:] == (delta, delta.replace("-000001", ""), flag)


def test_a_cycle_refuses_a_chain_that_appeared_after_preflight(env: SimEnv) -> None:
    """The chain appears between runs: the cycle refuses before its snapshot, and
    the snapshot it would have taken would freeze the delta, never the base."""
    m = env.migration(allow_enable_cbt=True)
    try:
        with m.workspace:
            run_cycles(m, 1)
        delta = put_on_delta(env, False)
        with m.workspace, pytest.raises(DiskChainError, match="stale"):
            run_cycle(m)
        assert m.source.list_snapshots("alice") == []
        assert m.workspace.state.cycles == 1
    finally:
        close_migration(m)
    assert disk_backing(env)[1] == delta


def test_allowed_consolidation_runs_before_the_first_snapshot(env: SimEnv) -> None:
    """allow_consolidate: ConsolidateVMDisks_Task, then the VM is on its base and the
    seed reads it (before: the flag did not exist and the chain went unseen)."""
    put_on_delta(env, True)
    m = env.migration(source_kw={"allow_consolidate": True}, allow_enable_cbt=True)
    try:
        report = run_preflight(m, raise_on_failure=False)
        check = next(c for c in report.checks if c.name == "disk chain")
        assert check.ok and "consolidated before the first snapshot" in check.detail
        with m.workspace:
            out = run_cycles(m, 1)
        assert out[0].record["certify"]["result"] == "identical"
    finally:
        close_migration(m)
    _key, base, parent, needed = disk_backing(env)
    assert (parent, needed) == (None, False) and base.endswith("/alice.vmdk")
    assert env.disk.flat.read_bytes() == env.bob_flat.read_bytes()


def test_a_base_named_like_a_delta_is_a_base(env: SimEnv) -> None:
    """Told by backing.parent, not by name: a flat disk called alice-000001.vmdk
    (a clone's or a consolidated chain's leftover name) is read from
    alice-000001-flat.vmdk.  Before: 'cannot find the base' (HostApiError, exit 1)."""
    key, base, _, _ = disk_backing(env)
    named = base.replace(".vmdk", "-000001.vmdk")
    env.src.control(op="disk", vm="alice", key=key, fileName=named, parent=False)
    host = env.source()
    try:
        disk = host.find_vm("alice").disks[0]
        assert disk.path == "alice/alice-000001-flat.vmdk"
        assert [c.ok for c in host.migration_checks(host.find_vm("alice"))
                if c.name == "disk chain"] == [True]
    finally:
        host.close()
