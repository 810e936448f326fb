"""Where Bob is registered in vCenter's inventory: ``destination.vm_folder`` and
``destination.resource_pool`` (inventory paths), checked at preflight.

Before: VsphereHost could place Bob, but no parameter reached it, so every copy landed in
the datacenter's root VM folder and the host's root pool, whatever the operator's folder
and pool layout (the review of real ESXi, F13).  RegisterVM wants the host to be "a member
of the ComputeResource indirectly specified by the pool" (vSphere Web Services API,
Folder.RegisterVM_Task) and refuses otherwise; registration runs at the cutover, with
Alice already off, so preflight says it first.

Against the simulator's VPX model (tests/vsphere/vpxenv.py: DC0 with standalone host
DC0_H0, where Alice runs, and cluster DC0_C0, whose host DC0_C0_H0 receives Bob).  What
only a real vCenter adds: permissions on the folder and pool (Resource.AssignVMToPool),
DRS rules, and vApps as pools, none of which this test reaches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from tests.vsphere import vsim
from tests.vsphere.vpxenv import DST_HOST, VpxEnv, vpx_env
from vmigrate_lib.engine.cutover import CutoverOptions, run_cutover
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.errors import NotFoundError
from vmigrate_lib.session import close_migration

OPTS = CutoverOptions(shutdown_timeout=30, ready_timeout=30, certify="full", shutdown_s=1.0,
                      boot_s=1.0, max_sync_age=3600, force=True)
CLUSTER_POOL = "DC0/host/DC0_C0/Resources"


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path) -> Iterator[VpxEnv]:
    with vpx_env(tmp_path, vcsim_binary) as e:
        yield e


def place(folder: str = "", pool: str = "") -> dict[str, Any]:
    return {"cutover.identity": "new-name", "dest_name": "bob",
            "destination.vm_folder": folder, "destination.resource_pool": pool}


def test_bob_lands_in_the_folder_and_pool_asked_for(env: VpxEnv) -> None:
    with vsim.pyvmomi(env.sim) as si:
        dc = vsim.objects(si, vim.Datacenter)[0]
        dc.vmFolder.CreateFolder("Migrated")
        pool = vsim.objects(si, vim.ClusterComputeResource)[0].resourcePool
        pool.CreateResourcePool("Wave1", vim.ResourceConfigSpec(
            cpuAllocation=vim.ResourceAllocationInfo(reservation=0, limit=-1,
                                                     expandableReservation=True,
                                                     shares=vim.SharesInfo(level="normal")),
            memoryAllocation=vim.ResourceAllocationInfo(reservation=0, limit=-1,
                                                        expandableReservation=True,
                                                        shares=vim.SharesInfo(level="normal"))))
    top = place("DC0/vm/Migrated", f"{CLUSTER_POOL}/Wave1")
    lines, err = env.preflight_lines(**top)
    assert err is None, err
    assert lines["placement"] == "Bob is registered in folder Migrated, pool Wave1 of DC0_C0"
    m = env.migration(env.params(**top))
    try:
        with m.workspace:
            run_cycles(m, 2)
    finally:
        close_migration(m)
    (env.root / "dstds" / "bob" / "vmware.log").touch()  # simulator: RegisterVM wants it
    m = env.migration(env.params(**top))
    try:
        with vsim.GuestStarter(env.sim, "bob", after_power_off=True), m.workspace:
            res = run_cutover(m, OPTS)
    finally:
        close_migration(m)
    assert res.status == "done", res
    with vsim.pyvmomi(env.sim) as si:
        bob = vsim.vm(si, "bob")
        assert bob.parent.name == "Migrated" and bob.resourcePool.name == "Wave1"
        assert bob.runtime.host.name == DST_HOST


def test_a_pool_the_destination_host_is_not_in_is_refused_at_preflight(env: VpxEnv) -> None:
    """The standalone host DC0_H0's pool cannot take a VM registered on DC0_C0_H0."""
    lines, err = env.preflight_lines(**place(pool="DC0/host/DC0_H0/Resources"))
    assert isinstance(err, NotFoundError), err
    assert lines["placement"] == ("resource pool Resources belongs to DC0_H0, which does not "
                                  f"hold host {DST_HOST}")
    assert "destination.resource_pool" in err.one_line()


def test_a_folder_that_is_not_there_is_refused_before_anything(env: VpxEnv) -> None:
    with pytest.raises(NotFoundError, match="no VM folder at inventory path 'DC0/vm/Nope'"):
        env.migration(env.params(**place("DC0/vm/Nope")))
