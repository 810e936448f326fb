"""Preflight sees what would fail later on a real host (issue 11 item 5).

Each test sets the simulated host up as a real ESXi or vCenter reports it, through
the peer's ``/vmigrate-realhost`` control (tests/peers/vcsim/realhost.go), and runs
vmigrate's own preflight or cycle against it.  The behaviours and their sources
(tests/peers/README.md, "issue 11 items 5 and 7"):

* independent disks are "not affected by snapshots" (vSphere API VirtualDiskMode),
  so their flat file is never frozen; multi-writer disks cannot be snapshotted
  (Broadcom KB 313527 / VMware KB 1034165); an RDM is a LUN; a vSAN or vVol disk is an
  object with a ``backingObjectId`` and no ``-flat.vmdk`` (DatastoreSummary.type);
* privileges from ``AuthorizationManager.FetchUserPrivilegeOnEntities`` (API 6.5+);
  QueryChangedDiskAreas needs ``VirtualMachine.Provisioning.DiskRandomRead``;
* a destination's runnable hardware versions from
  ``EnvironmentBrowser.QueryConfigOptionDescriptor`` (``runSupported``);
* the ``TSM-SSH`` service and the outbound ``sshClient`` firewall ruleset
  (HostConfigInfo.service / .firewall; both off on a fresh ESXi);
* ``runtime.host``: DRS may vMotion the VM to another host of the cluster.

What only a real host shows: the exact fault a snapshot of a multi-writer disk
gives, whether an independent disk's flat file is really locked (EBUSY) for the
agent, whether a vCenter user name resolves the same way for
FetchUserPrivilegeOnEntities, and a real DRS migration (the peer only sets
``runtime.host``).
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from tests.vsphere.simenv import SimEnv, sim_env
from vmigrate_lib.control.host import HostCheck
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.engine.sync import run_cycles, start
from vmigrate_lib.errors import (
    DiskMismatch,
    HostNotPrepared,
    UnsupportedDisk,
    VmigrateError,
    VmMoved,
)
from vmigrate_lib.session import close_migration


def realhost(sim: vcsim_peer.VcsimInfo, **request: Any) -> None:
    """Set the simulated host up as a real one reports it (realhost.go)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(
        f"https://{sim.host}:{sim.port}/vmigrate-realhost", data=json.dumps(request).encode(),
        method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        resp.read()


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path) -> Iterator[SimEnv]:
    with sim_env(tmp_path, vcsim_binary) as e:
        yield e


def disk_key(env: SimEnv) -> int:
    with vsim.pyvmomi(env.src) as si:
        vm = vsim.vm(si, "alice")
        return int(next(d.key for d in vm.config.hardware.device
                        if isinstance(d, vim.vm.device.VirtualDisk)))


def refused_at_start(env: SimEnv, name: str, kind: type[VmigrateError]) -> tuple[str, str]:
    """Preflight's failing line ``name`` and the one-line error of ``start``; and that
    nothing changed (no snapshot, no workspace state, no copy)."""
    m = env.migration(allow_enable_cbt=True)
    try:
        report = run_preflight(m, raise_on_failure=False)
        line = next(c for c in report.checks if c.name == name and not c.ok)
        with m.workspace, pytest.raises(kind) as info:
            start(m)
        assert info.value.exit_code == 2
        assert m.source.list_snapshots("alice") == []
        assert not m.workspace.state_path.exists()
        assert not env.bob_flat.exists()
        return line.detail, info.value.one_line()
    finally:
        close_migration(m)


DISK_KINDS = {
    "independent": ({"mode": "independent_persistent"}, "independent_persistent"),
    "multi-writer": ({"sharing": "sharingMultiWriter"}, "multi-writer"),
    "rdm-physical": ({"rdm": "physicalMode"}, "raw device mapping (physicalMode)"),
    "vsan-object": ({"backingObjectId": "52e7a1c4-0000-0000-0000-000000000001"},
                    "no -flat.vmdk"),
}


@pytest.mark.parametrize("kind", list(DISK_KINDS))
def test_a_disk_no_snapshot_freezes_is_one_preflight_line_exit_2(env: SimEnv, kind: str) -> None:
    """Before: the RDM was a HostApiError from deep inside vm_info (exit 1, no report);
    independent, multi-writer and vSAN disks passed preflight (the cycle would read a
    live locked file, fail to snapshot, or read a -flat.vmdk that does not exist)."""
    setting, words = DISK_KINDS[kind]
    realhost(env.src, op="disk", vm="alice", key=disk_key(env), **setting)
    detail, line = refused_at_start(env, "disk types", UnsupportedDisk)
    assert words in detail and words in line, (detail, line)
    assert "\n" not in line and "docs/real-hosts.md" in line


def test_a_vsan_datastore_is_refused(env: SimEnv) -> None:
    """A datastore whose summary.type is vsan holds objects, not flat files."""
    realhost(env.src, op="datastore", name="srcds", type="vsan")
    detail, line = refused_at_start(env, "disk types", UnsupportedDisk)
    assert "vsan datastore [srcds]" in detail and "no -flat.vmdk" in line


def test_a_missing_privilege_is_named(env: SimEnv) -> None:
    """QueryChangedDiskAreas needs VirtualMachine.Provisioning.DiskRandomRead: a user
    without it is refused at preflight, not at the first delta cycle."""
    with vsim.pyvmomi(env.src) as si:
        admin = next(r for r in si.content.authorizationManager.roleList if r.name == "Admin")
        privs = [p for p in admin.privilege if p != "VirtualMachine.Provisioning.DiskRandomRead"]
    realhost(env.src, op="privileges", user=env.src.user, privileges=privs)
    detail, line = refused_at_start(env, "privileges on VM alice", HostNotPrepared)
    assert "VirtualMachine.Provisioning.DiskRandomRead (QueryChangedDiskAreas)" in line
    assert "VirtualMachine.State.CreateSnapshot" not in detail


def test_a_destination_that_cannot_run_the_hardware_version(env: SimEnv) -> None:
    """Alice at vmx-21 (ESXi 8.0U2), a destination whose descriptors run vmx-13 only."""
    realhost(env.src, op="vm", vm="alice", version="vmx-21")
    detail, line = refused_at_start(env, "hardware version", HostNotPrepared)
    assert "cannot run vmx-21" in detail and "runs vmx-13" in detail, detail
    assert "hardware version vmx-21" in line


def test_the_ssh_service_stopped_on_the_destination(env: SimEnv) -> None:
    realhost(env.dst, op="host", host="", ssh=False)
    detail, line = refused_at_start(env, f"SSH service on {env.dst.host}", HostNotPrepared)
    assert detail == "TSM-SSH stopped" and "TSM-SSH" in line


def test_direct_mode_needs_the_outbound_ssh_rule(env: SimEnv) -> None:
    """sshClient is disabled on a fresh ESXi (and in the peer): direct mode is refused,
    auto says it relays, relay does not ask; enabled, direct passes."""
    def line(mode: str) -> HostCheck | None:
        hp = vsim.host_params(env.src, ssh_mode=mode)
        with VsphereHost(hp, keepalive=None) as h:
            lines = h.migration_checks(h.find_vm("alice"))
        return next((c for c in lines if c.name == "firewall sshClient"), None)

    direct = line("direct")
    assert direct is not None and not direct.ok and isinstance(direct.error, HostNotPrepared)
    assert "sshClient" in direct.error.one_line() and "ssh_mode: relay" in direct.error.one_line()
    auto = line("auto")
    assert auto is not None and auto.ok and "relays" in auto.detail
    assert line("relay") is None
    realhost(env.src, op="host", host="", sshClient=True)
    direct = line("direct")
    assert direct is not None and direct.ok


def test_every_cycle_rechecks_the_disks(env: SimEnv) -> None:
    """A disk made independent after preflight: the next cycle refuses before its
    snapshot (exit 2), the state and the copy stay as the last cycle left them."""
    m = env.migration(allow_enable_cbt=True)
    try:
        with m.workspace:
            run_cycles(m, 1)
        realhost(env.src, op="disk", vm="alice", key=disk_key(env), mode="independent_persistent")
        with m.workspace, pytest.raises(UnsupportedDisk) as info:
            run_cycle(m)
        assert info.value.exit_code == 2
        assert m.source.list_snapshots("alice") == []
        assert m.workspace.state.cycles == 1
    finally:
        close_migration(m)


@pytest.fixture
def vpx(vcsim_binary: Path) -> Iterator[vcsim_peer.VcsimInfo]:
    with vcsim_peer.run_vcsim(model="vpx", binary=vcsim_binary) as sim:
        yield sim


def test_a_vm_moved_by_drs_is_refused(vpx: vcsim_peer.VcsimInfo) -> None:
    """One vCenter, a cluster of hosts: the VM runs on DC0_C0_H0 at preflight, DRS moves
    it to DC0_C0_H1; preflight and every cycle's recheck name both hosts."""
    with vsim.pyvmomi(vpx) as si:
        vm = next(v for v in vsim.objects(si, vim.VirtualMachine)
                  if v.runtime.host.name == "DC0_C0_H0")
        name = vm.name
    with VsphereHost(vsim.host_params(vpx, host="DC0_C0_H0"), keepalive=None) as h:
        first = next(c for c in h.recheck(h.find_vm(name)) if c.name == "source host")
        assert first.ok, first
        realhost(vpx, op="vm", vm=name, host="DC0_C0_H1")
        lines = h.migration_checks(h.find_vm(name))
    moved = next(c for c in lines if c.name == "source host")
    assert not moved.ok and isinstance(moved.error, VmMoved)
    text = moved.error.one_line()
    assert "DC0_C0_H1" in text and "DC0_C0_H0" in text and "DRS" in text
    assert moved.error.exit_code == 2


def test_disks_on_two_datastores_are_one_line(env: SimEnv) -> None:
    """A second disk on another datastore: one line naming both datastores (the source
    host's lines; the whole preflight would also open [otherds] over SSH)."""
    with vsim.pyvmomi(env.src) as si:
        vsim.create_datastore(si, "otherds", env.root / "otherds")
        (env.root / "otherds" / "alice").mkdir()
        vm = vsim.vm(si, "alice")
        disk = next(d for d in vm.config.hardware.device
                    if isinstance(d, vim.vm.device.VirtualDisk))
        spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(
            operation="add", fileOperation="create", device=vim.vm.device.VirtualDisk(
                key=-2, unitNumber=1, controllerKey=disk.controllerKey, capacityInKB=1024,
                backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                    fileName="[otherds] alice/data.vmdk", diskMode="persistent",
                    thinProvisioned=True)))])
        WaitForTask(vm.ReconfigVM_Task(spec))
    with env.source() as h:
        lines = h.migration_checks(h.find_vm("alice"))
    check = next(c for c in lines if c.name == "disk datastores")
    assert not check.ok and isinstance(check.error, DiskMismatch)
    assert "otherds" in check.detail and "srcds" in check.detail
    assert "2 datastores" in check.error.one_line() and check.error.exit_code == 2
