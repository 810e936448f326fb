"""Register Bob: a VM from files already on the destination datastore.

Everything that can be wrong (name taken, datastore or network unknown) is
checked before the inventory changes; a failure after registration (network
mapping) unregisters again, so a re-run starts from the same place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import DestinationExists, HostApiError, MacMismatch, NotFoundError, VmigrateError
from ..dspaths import ds_path
from ..host import HostCheck, VmInfo
from . import macs
from ._vmomi import vim
from .connection import Connection
from .inventory import collect, datastore_ref, vm_info
from .tasks import wait_task

REGISTER_TIMEOUT = 300.0


def datacenter_of(obj: Any) -> Any:
    while obj is not None and not isinstance(obj, vim.Datacenter):
        obj = obj.parent
    return obj


def default_placement(conn: Connection, host: Any) -> tuple[Any, Any]:
    """(VM folder, resource pool): the datacenter's root VM folder, the host's root pool."""

    def run() -> tuple[Any, Any]:
        dc = datacenter_of(host)
        if dc is None:
            raise HostApiError(f"host {host.name} is in no datacenter")
        return dc.vmFolder, host.parent.resourcePool

    return conn.call(run, "finding where to register")


def placement_check(conn: Connection, host: Any, vm_folder: Any, pool: Any) -> HostCheck:
    """The ``vm_folder`` and ``resource_pool`` asked for can take a VM registered on
    ``host``: the folder in the host's datacenter, the pool in the host's own compute
    resource (cluster or standalone host).  The vSphere Web Services API says the host "must
    specify a host that is a member of the ComputeResource indirectly specified by the
    pool" (Folder.RegisterVM_Task, VirtualMachine.MarkAsVirtualMachine), and refuses
    otherwise with InvalidArgument; a folder of another datacenter is refused too
    (DatacenterMismatch).  Registration runs at the cutover, with the source already off:
    said at preflight instead."""

    def run() -> HostCheck:
        dc, where = datacenter_of(host), []
        if vm_folder is not None:
            if datacenter_of(vm_folder) != dc:
                return _misplaced(f"VM folder {vm_folder.name} is not in host {host.name}'s "
                                  "datacenter", "vm_folder")
            where.append(f"folder {vm_folder.name}")
        if pool is not None:
            owner = pool.owner
            if host not in list(getattr(owner, "host", None) or []):
                return _misplaced(f"resource pool {pool.name} belongs to {owner.name}, which "
                                  f"does not hold host {host.name}", "resource_pool")
            where.append(f"pool {pool.name} of {owner.name}")
        return HostCheck("placement", True, "Bob is registered in " + ", ".join(where))

    return conn.call(run, "checking where Bob is registered")


def _misplaced(what: str, parameter: str) -> HostCheck:
    return HostCheck("placement", False, what, NotFoundError(
        what, hint=f"set destination.{parameter} to one on the destination host's side "
        "(an inventory path), or remove it for the host's default", parameter=parameter))


def resolve_entity(conn: Connection, path: str, kind: Any, what: str) -> Any:
    """A folder or resource pool by inventory path (``DC/vm/Migrated``)."""
    ref = conn.call(lambda: conn.content.searchIndex.FindByInventoryPath(path), f"looking up {path}")
    if ref is None or not isinstance(ref, kind):
        raise NotFoundError(
            f"no {what} at inventory path {path!r} on {conn.where}",
            hint=f"give the {what} as Datacenter/... inventory path",
            path=path,
        )
    return ref


def nic_network_name(nic: Any, host: Any) -> str | None:
    b = nic.backing
    if isinstance(b, vim.vm.device.VirtualEthernetCard.NetworkBackingInfo):
        return str(b.deviceName) if b.deviceName else (str(b.network.name) if b.network else None)
    if isinstance(b, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        key = b.port.portgroupKey if b.port is not None else None
        for net in host.network:
            if isinstance(net, vim.dvs.DistributedVirtualPortgroup) and net.key == key:
                return str(net.name)
    return None


def network_backing(net: Any) -> Any:
    if isinstance(net, vim.dvs.DistributedVirtualPortgroup):
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
            port=vim.dvs.PortConnection(
                portgroupKey=net.key, switchUuid=net.config.distributedVirtualSwitch.uuid
            )
        )
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=net.name, network=net)


def host_networks(conn: Connection, host: Any) -> dict[str, Any]:
    return conn.call(lambda: {str(n.name): n for n in host.network}, f"listing networks of {host.name}")


def register(
    conn: Connection,
    host: Any,
    name: str,
    datastore: str,
    folder: str,
    network_map: Mapping[str, str] | None = None,
    vm_folder: Any = None,
    pool: Any = None,
    timeout: float = REGISTER_TIMEOUT,
) -> Any:
    """Register ``[datastore] folder/name.vmx`` on ``host``; returns the VM (idempotent)."""
    vmx = ds_path(datastore, f"{folder.strip('/')}/{name}.vmx")
    datastore_ref(conn, host, datastore)
    same = [
        (o, v) for o, v in collect(conn, vim.VirtualMachine, ["name", "config.files.vmPathName"])
        if v.get("name") == name
    ]
    for o, v in same:
        if v.get("config.files.vmPathName") == vmx:
            return o  # a re-run after a crash: already registered
    if same:
        raise DestinationExists(
            f"a VM named {name!r} is already registered on {conn.where}",
            vm=name,
            existing=[str(v.get("config.files.vmPathName")) for _, v in same],
        )
    nets = host_networks(conn, host)
    wanted = dict(network_map or {})
    unknown = sorted({t for t in wanted.values() if t not in nets})
    if unknown:
        raise NotFoundError(
            f"network(s) {', '.join(unknown)} not found on host {conn.call(lambda: host.name, 'host')}",
            hint=f"map to one of: {', '.join(sorted(nets)) or 'none'}",
            networks=unknown,
        )
    if vm_folder is None or pool is None:
        dflt_folder, dflt_pool = default_placement(conn, host)
        vm_folder = vm_folder or dflt_folder
        pool = pool or dflt_pool
    what = f"registering {vmx} as {name}"
    task = conn.call(
        lambda: vm_folder.RegisterVM_Task(path=vmx, name=name, asTemplate=False, pool=pool, host=host),
        what,
    )
    try:
        vm = conn.call(lambda: wait_task(task, timeout, what, vm=name, path=vmx), what)
    except HostApiError as exc:
        if isinstance(exc.__cause__, (vim.fault.NotFound, vim.fault.FileNotFound)):
            raise HostApiError(
                f"{what} failed: {vmx} (or a file it names) is not on the datastore",
                hint="copy the VM's configuration (.vmx, .nvram) and disks to that folder first",
                vm=name,
                path=vmx,
            ) from exc.__cause__
        raise
    try:  # always: DVS NICs are re-bound even when no network is renamed
        map_networks(conn, vm, host, nets, wanted, timeout)
    except VmigrateError:
        try:
            conn.call(lambda: vm.UnregisterVM(), f"unregistering {name} after a failure")
        except VmigrateError:
            pass
        raise
    return vm


def map_networks(
    conn: Connection, vm: Any, host: Any, nets: Mapping[str, Any], wanted: Mapping[str, str],
    timeout: float,
) -> int:
    """Re-point NICs from source network names to destination networks, and re-bind
    every distributed-switch NIC to its port group without a port key (the ``.vmx``
    carries Alice's ``ethernetN.dvs.portId``, a port that stays hers under one
    vCenter; with only ``portgroupKey`` and ``switchUuid`` the switch picks a free
    port: vSphere API reference, DistributedVirtualSwitchPortConnection).
    Returns the NICs changed."""

    def plan() -> list[Any]:
        changes = []
        for dev in vm.config.hardware.device:
            if not isinstance(dev, vim.vm.device.VirtualEthernetCard):
                continue
            current = nic_network_name(dev, host)
            target = wanted.get(current or "", current)
            port = getattr(dev.backing, "port", None)
            bound = bool(port is not None and port.portKey)
            if target is None or target not in nets or (target == current and not bound):
                continue
            dev.backing = network_backing(nets[target])
            changes.append(
                vim.vm.device.VirtualDeviceSpec(
                    operation=vim.vm.device.VirtualDeviceSpec.Operation.edit, device=dev
                )
            )
        return changes

    what = f"mapping the networks of VM {vm.name}"
    changes = conn.call(plan, what)
    if changes:
        task = conn.call(lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=changes)), what)
        conn.call(lambda: wait_task(task, timeout, what, vm=vm.name), what)
    return len(changes)


def verify_macs(conn: Connection, vm: Any, name: str, source: VmInfo) -> VmInfo:
    """Bob as registered, once his NICs are proven to carry the source's MACs
    (:mod:`.macs`); on a mismatch he is unregistered again (files kept) and
    :class:`MacMismatch` raised, before anything powers him on."""
    info = vm_info(conn, vm)
    try:
        macs.check(name, info.macs, source.macs, source.name)
    except MacMismatch:
        unregister(conn, vm)
        raise
    return info


def unregister(conn: Connection, vm: Any) -> None:
    conn.call(lambda: vm.UnregisterVM(), f"unregistering VM {vm.name}", vm=vm.name)


__all__ = [
    "datacenter_of",
    "default_placement",
    "map_networks",
    "nic_network_name",
    "register",
    "resolve_entity",
    "unregister",
    "verify_macs",
]
