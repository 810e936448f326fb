"""What a :class:`~vmigrate_lib.control.vsphere.host.VsphereHost` checks, composed.

The lists preflight shows for a source VM, for a destination host, and the few lines
re-read before every cycle, built from the single checks of :mod:`.checks` (and the
disk chain and placement, which need the snapshot tree and the VM's folder).  The
host's methods call these, so its API guard still covers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import DiskChainError
from .. import placement
from ..host import HostCheck, VmInfo
from . import checks, register, snapshots
from .licence import licence_check

if TYPE_CHECKING:
    from .host import VsphereHost


def source_checks(host: VsphereHost, vm: VmInfo) -> list[HostCheck]:
    """The licence first (a free one refuses every write: issue 12 item 2), then the
    VM's own checks (:func:`vm_checks`)."""
    return [licence_check(host.conn, host.vm_ref(vm.name), vm.name), *vm_checks(host, vm)]


def vm_checks(host: VsphereHost, vm: VmInfo) -> list[HostCheck]:
    """The VM on this host; disks a snapshot freezes as flat files (:mod:`.checks`);
    no disk on a delta (the base would be stale); every disk in the VM's folder on
    one datastore (the cutover rebuilds Bob's from that folder); the API user's
    privileges; the SSH service, and the outbound SSH rule direct mode needs."""
    ref = host.vm_ref(vm.name)
    out = host.recheck(vm)
    out[2:2] = [chain_check(host, vm), placement.disk_datastores(vm)]
    out.append(checks.privileges(host.conn, ref, checks.SOURCE_PRIVILEGES, f"VM {vm.name}"))
    if host.host_ref is not None:
        out.append(checks.ssh_service(host.conn, host.host_ref, host.name))
        if host.hp.ssh_mode != "relay":
            out.append(checks.ssh_client_rule(host.conn, host.host_ref, host.name,
                                              host.hp.ssh_mode))
    return out


def destination_checks(host: VsphereHost, vm: VmInfo) -> list[HostCheck]:
    """This host can run the VM's hardware version, serves SSH, and the API user may
    register and power on a VM here."""
    ref = host.host_ref
    if ref is None:
        return []
    placed = ([register.placement_check(host.conn, ref, host.vm_folder_ref, host.pool_ref)]
              if host.vm_folder_ref is not None or host.pool_ref is not None else [])
    return [licence_check(host.conn, ref, vm.name),  # RegisterVM, PowerOn: writes
            checks.hardware_version(host.conn, ref, host.name, vm.hardware_version),
            checks.ssh_service(host.conn, ref, host.name),
            checks.privileges(host.conn, ref, checks.DEST_PRIVILEGES, f"host {host.name}"),
            *placed]


def recheck(host: VsphereHost, vm: VmInfo) -> list[HostCheck]:
    """Before every cycle: the VM still on this host (DRS), its disks still
    copyable (a reconfiguration) and in its folder (a storage vMotion)."""
    host_name = str(host.host_ref.name) if host.host_ref is not None else ""
    details = host.disk_details(vm.name)
    return [checks.running_host(vm, host_name),
            checks.disk_kinds(details, checks.datastore_types(host.conn), vm.name),
            placement.disk_placement(vm)]


def chain_check(host: VsphereHost, vm: VmInfo) -> HostCheck:
    """Every disk on its base file, or (``allow_consolidate``) consolidated first."""
    needed, deltas = snapshots.chain_problems(host.conn, host.vm_ref(vm.name))
    if not needed and not deltas:
        return HostCheck("disk chain", True, "every disk on its base file")
    what = (f"on a delta: {', '.join(d.descriptor for d in deltas)}" if deltas
            else "consolidation needed (runtime.consolidationNeeded)")
    if host.allow_consolidate:
        return HostCheck("disk chain", True,
                         f"{what}: consolidated before the first snapshot (allowed)")
    err = (snapshots.chain_error(vm.name, deltas) if deltas else DiskChainError(
        f"VM {vm.name} needs disk consolidation (runtime.consolidationNeeded): its disks "
        f"may run on a delta the snapshot tree no longer shows", vm=vm.name))
    return HostCheck("disk chain", False, what, err)
