"""DRS keeps the VM on its host for the migration (issue 11 item 5): a per-VM override.

With DRS fully automated, vCenter may vMotion Alice between two cycles; vmigrate
reads her disks through ``source.host``.  The first sync's claim sets her own DRS
behaviour to manual (``ClusterConfigSpecEx.drsVmConfigSpec`` through
``ReconfigureComputeResource_Task(modify=True)``; vSphere API ClusterDrsVmConfigInfo:
``behavior`` overrides the cluster's default for this VM) and the claim's release
(cutover done, abandon) puts back what was there: no override, or the one the
operator had.  The simulator (vpx model) stores the overrides as vCenter does; it
runs no DRS, so only a real vCenter shows that a manual VM is not moved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from tests.vsphere.test_preflight_real import realhost
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.dataplane.transport import LocalTransport
from vmigrate_lib.engine.claim import read_claim, release_claim, take_claim
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.params import MigrationParams
from vmigrate_lib.session import close_migration

HOST = "DC0_C0_H0"


@pytest.fixture
def vpx(vcsim_binary: Path) -> Iterator[vcsim_peer.VcsimInfo]:
    with vcsim_peer.run_vcsim(model="vpx", binary=vcsim_binary) as sim:
        yield sim


def cluster_spec(si: Any, **spec: Any) -> None:
    cluster = next(c for c in vsim.objects(si, vim.ClusterComputeResource) if c.name == "DC0_C0")
    WaitForTask(cluster.ReconfigureComputeResource_Task(
        spec=vim.cluster.ConfigSpecEx(**spec), modify=True))


def overrides(sim: vcsim_peer.VcsimInfo) -> dict[str, tuple[Any, str]]:
    """VM name -> (enabled, behavior) of each per-VM DRS override, as vCenter holds them."""
    with vsim.pyvmomi(sim) as si:
        cluster = next(c for c in vsim.objects(si, vim.ClusterComputeResource)
                       if c.name == "DC0_C0")
        return {c.key.name: (c.enabled, str(c.behavior))
                for c in cluster.configurationEx.drsVmConfig or []}


def a_vm_on(sim: vcsim_peer.VcsimInfo, host: str) -> str:
    realhost(sim, op="cluster", name="DC0_C0", drs=True)
    with vsim.pyvmomi(sim) as si:
        return str(next(v.name for v in vsim.objects(si, vim.VirtualMachine)
                        if v.runtime.host.name == host))


def test_hold_sets_manual_and_release_removes_it(vpx: vcsim_peer.VcsimInfo) -> None:
    """Before: no such capability; DRS could move the VM (only the recheck refused)."""
    name = a_vm_on(vpx, HOST)
    assert name not in overrides(vpx)
    with VsphereHost(vsim.host_params(vpx, host=HOST), keepalive=None) as h:
        saved = h.hold_placement(name)
        assert saved is not None and saved["override"] is None
        assert overrides(vpx)[name] == (True, "manual")
        assert h.hold_placement(name) is None  # already manual: nothing to change
        h.release_placement(name, saved)
    assert name not in overrides(vpx)


def test_the_operators_own_override_comes_back(vpx: vcsim_peer.VcsimInfo) -> None:
    name = a_vm_on(vpx, HOST)
    with vsim.pyvmomi(vpx) as si:
        vm = vsim.vm(si, name)
        cluster_spec(si, drsVmConfigSpec=[vim.cluster.DrsVmConfigSpec(
            operation="add", info=vim.cluster.DrsVmConfigInfo(
                key=vm, enabled=True, behavior="partiallyAutomated"))])
    with VsphereHost(vsim.host_params(vpx, host=HOST), keepalive=None) as h:
        saved = h.hold_placement(name)
        assert saved is not None
        assert overrides(vpx)[name] == (True, "manual")
        h.release_placement(name, saved)
    assert overrides(vpx)[name] == (True, "partiallyAutomated")


def test_drs_off_changes_nothing(vpx: vcsim_peer.VcsimInfo) -> None:
    name = a_vm_on(vpx, HOST)
    realhost(vpx, op="cluster", name="DC0_C0", drs=False)
    with VsphereHost(vsim.host_params(vpx, host=HOST), keepalive=None) as h:
        assert h.hold_placement(name) is None
    assert name not in overrides(vpx)


def test_the_claim_holds_it_and_its_release_puts_it_back(vpx: vcsim_peer.VcsimInfo,
                                                         tmp_path: Path) -> None:
    """The first sync's claim sets the override and records it in the claim file and the
    journal; releasing the claim (abandon, cutover done) restores it.  The claim file
    lives in the VM's folder, read through a real agent on the simulator's datastore."""
    name = a_vm_on(vpx, HOST)
    with vsim.pyvmomi(vpx) as si:
        roots = {str(d.name): Path(d.info.url) for d in vsim.objects(si, vim.Datastore)}

    def transports(ds: str, root: str) -> LocalTransport:
        return LocalTransport(str(roots[ds]))

    src = VsphereHost(vsim.host_params(vpx, host=HOST), keepalive=None,
                      transport_factory=transports)
    params = MigrationParams(vm=name, dest_name="bob", source=src.hp, destination=src.hp,
                             workspace=tmp_path / "ws")
    ws = Workspace(params.workspace)
    ws.load()
    m = Migration(params=params, source=src, dest=src, workspace=ws)
    try:
        with m.workspace:
            mid = m.workspace.init(m.identity()).migration_id
            vm = m.vm()
            take_claim(m, vm)
            claim = read_claim(m, vm)
            assert claim is not None and claim["placement"]["override"] is None
            assert overrides(vpx)[name] == (True, "manual")
            assert release_claim(m, vm, mid, "abandon")
            kinds = [json.loads(line)["type"]
                     for line in m.workspace.journal.path.read_text().splitlines()]
        assert name not in overrides(vpx)
        assert "placement_held" in kinds and "placement_released" in kinds
    finally:
        close_migration(m)
