"""Finding VMs, hosts and datastores, and reading a VM's disks.

A VM is named by its name, an inventory path (``DC/vm/folder/name``) or a
BIOS/instance UUID.  Names repeat across folders and datacenters, so a name
that matches more than one VM is an error, never a guess.
"""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

from ...errors import DatastoreNotFound, HostApiError, VmAmbiguous, VmNotFound
from ...modes import DiskFormat
from ..dspaths import flat_path, parse_ds_path
from ..host import DiskInfo, PowerState, VmInfo
from ._vmomi import vim, vmodl
from .connection import Connection

KiB = 1024
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class DiskDetail:
    """What vSphere says about one disk, beyond :class:`DiskInfo` (mode, files)."""

    key: int
    label: str
    descriptor: str  #: current backing, ``[ds] folder/disk-000001.vmdk`` under a snapshot
    base_descriptor: str  #: root of the backing chain, ``[ds] folder/disk.vmdk``
    capacity: int
    thin: bool
    mode: str  #: persistent | independent_persistent | independent_nonpersistent | ...
    change_id: str | None
    backing_type: str
    #: the backing's parent (``backing.parent.fileName``): set when this file is a delta
    #: of a snapshot chain, whatever its name; empty for a base disk
    parent: str = ""
    sharing: str = ""  #: ``backing.sharing``: sharingNone | sharingMultiWriter ("" unset)
    eagerly_scrub: bool = False  #: ``backing.eagerlyScrub``: eager-zeroed thick
    #: an RDM's compatibility mode (physicalMode | virtualMode); "" for a file disk
    rdm_mode: str = ""
    #: ``backing.backingObjectId``: set for a vSAN or vVol object (no flat file)
    backing_object_id: str = ""

    @property
    def independent(self) -> bool:
        return self.mode.startswith("independent")

    @property
    def multi_writer(self) -> bool:
        return self.sharing == "sharingMultiWriter"

    @property
    def provisioning(self) -> DiskFormat:
        """As ``vmkfstools -d`` names it: thin, lazily (zeroedthick) or eagerly zeroed thick."""
        if self.thin:
            return "thin"
        return "eagerzeroedthick" if self.eagerly_scrub else "zeroedthick"

    @property
    def is_delta(self) -> bool:
        """Whether the current backing is a delta: told by ``backing.parent``, never by the
        ``-00000N.vmdk`` name (a consolidated or cloned base may keep such a name)."""
        return bool(self.parent)


def collect(conn: Connection, obj_type: Any, props: list[str], root: Any = None) -> list[tuple[Any, dict[str, Any]]]:
    """(object, {prop: value}) for every object of a type under ``root``, in one round trip."""
    content = conn.content

    def run() -> list[tuple[Any, dict[str, Any]]]:
        view = content.viewManager.CreateContainerView(root or content.rootFolder, [obj_type], True)
        try:
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[
                    vmodl.query.PropertyCollector.ObjectSpec(
                        obj=view,
                        skip=True,
                        selectSet=[
                            vmodl.query.PropertyCollector.TraversalSpec(
                                name="view", path="view", skip=False, type=vim.view.ContainerView
                            )
                        ],
                    )
                ],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=obj_type, pathSet=props)],
            )
            out = []
            for oc in content.propertyCollector.RetrieveContents([spec]) or []:
                values = {p.name: p.val for p in oc.propSet or []}
                out.append((oc.obj, values))
            return out
        finally:
            view.Destroy()

    return conn.call(run, f"listing {obj_type.__name__} objects")


def find_vm_ref(conn: Connection, ident: str) -> Any:
    """The VirtualMachine named ``ident`` (name, inventory path or UUID)."""
    ident = ident.strip()
    if not ident:
        raise VmNotFound("no VM name given", hint="name the VM to migrate")
    where = conn.where
    if "/" in ident:
        ref = conn.call(
            lambda: conn.content.searchIndex.FindByInventoryPath(ident), f"looking up {ident}"
        )
        if isinstance(ref, vim.VirtualMachine):
            return ref
        if ref is None:
            raise VmNotFound(
                f"no VM at inventory path {ident!r} on {where}",
                hint="inventory paths look like Datacenter/vm/Folder/name",
                vm=ident,
            )
        raise VmNotFound(f"{ident!r} on {where} is a {type(ref).__name__}, not a VM", vm=ident)
    rows = collect(conn, vim.VirtualMachine, ["name", "config.uuid", "config.instanceUuid"])
    if _UUID.match(ident):
        want = ident.replace("-", "").lower()
        hits = [
            o
            for o, v in rows
            if want
            in {str(v.get("config.uuid") or "").replace("-", "").lower(),
                str(v.get("config.instanceUuid") or "").replace("-", "").lower()}
        ]
        kind = "UUID"
    else:
        hits = [o for o, v in rows if v.get("name") == ident]
        kind = "name"
    if not hits:
        raise VmNotFound(f"no VM with {kind} {ident!r} on {where}", vm=ident, host=where)
    if len(hits) > 1:
        paths = [inventory_path(conn, h) for h in hits]
        raise VmAmbiguous(
            f"{len(hits)} VMs have the {kind} {ident!r} on {where}: {', '.join(paths)}",
            vm=ident,
            matches=paths,
        )
    return hits[0]


def inventory_path(conn: Connection, ref: Any) -> str:
    """``DC/vm/folder/name`` of a managed entity (for messages and disambiguation)."""

    def run() -> str:
        parts = []
        obj = ref
        while obj is not None and not (isinstance(obj, vim.Folder) and obj == conn.content.rootFolder):
            parts.append(obj.name)
            obj = obj.parent
        return "/".join(reversed(parts))

    return conn.call(run, "reading an inventory path")


def disk_details(config: Any) -> list[DiskDetail]:
    """Every virtual disk of a VM (or snapshot) config."""
    out = []
    for dev in config.hardware.device:
        if not isinstance(dev, vim.vm.device.VirtualDisk):
            continue
        b = dev.backing
        descriptor = str(getattr(b, "fileName", "") or "")
        base = b
        while getattr(base, "parent", None) is not None:
            base = base.parent
        capacity = int(dev.capacityInBytes or 0) or int(dev.capacityInKB or 0) * KiB
        out.append(
            DiskDetail(
                key=int(dev.key),
                label=str(dev.deviceInfo.label if dev.deviceInfo else f"disk {dev.key}"),
                descriptor=descriptor,
                base_descriptor=str(getattr(base, "fileName", "") or descriptor),
                capacity=capacity,
                thin=bool(getattr(b, "thinProvisioned", False)),
                mode=str(getattr(b, "diskMode", "") or "persistent"),
                change_id=getattr(b, "changeId", None) or None,
                backing_type=type(b).__name__,
                parent=str(getattr(getattr(b, "parent", None), "fileName", "") or ""),
                sharing=str(getattr(b, "sharing", "") or ""),
                eagerly_scrub=bool(getattr(b, "eagerlyScrub", False)),
                rdm_mode=str(getattr(b, "compatibilityMode", "") or "") if _is_rdm(b) else "",
                backing_object_id=str(getattr(b, "backingObjectId", "") or ""),
            )
        )
    return out


def _is_rdm(backing: Any) -> bool:
    return isinstance(backing, vim.vm.device.VirtualDisk.RawDiskMappingVer1BackingInfo)


def to_disk_info(d: DiskDetail, cbt: bool) -> DiskInfo:
    """The engine's view: base flat file relative to its datastore.  Any backing is
    listed (an RDM too, by its mapping file): preflight's disk checks
    (:mod:`.checks`) refuse what cannot be copied, in one line, exit 2."""
    ds, path = parse_ds_path(d.base_descriptor)
    return DiskInfo(
        key=d.key,
        label=d.label,
        datastore=ds,
        path=flat_path(path),
        capacity=d.capacity,
        thin=d.thin,
        cbt_enabled=cbt,
        provisioning=d.provisioning,
    )


def vm_info(conn: Connection, vm: Any) -> VmInfo:
    """Everything the engine needs about one VM, read in a few calls."""

    def run() -> VmInfo:
        config = vm.config
        if config is None:
            raise HostApiError(f"VM {vm.name} has no configuration (inaccessible?)", vm=vm.name)
        cbt = bool(config.changeTrackingEnabled)
        details = disk_details(config)
        disks = tuple(to_disk_info(d, cbt) for d in details)
        ds, vmx = parse_ds_path(config.files.vmPathName)
        folder = vmx.rpartition("/")[0]
        runtime = vm.runtime
        guest = vm.guest
        return VmInfo(
            name=str(vm.name),
            uuid=str(config.uuid),
            host=str(runtime.host.name) if runtime.host is not None else "",
            power=PowerState(str(runtime.powerState)),
            datastore=ds,
            folder=folder,
            disks=disks,
            guest_ip=(str(guest.ipAddress) if guest is not None and guest.ipAddress else None),
            tools_running=bool(guest is not None and guest.toolsRunningStatus == "guestToolsRunning"),
            macs=tuple(str(d.macAddress or "").lower() for d in config.hardware.device
                       if isinstance(d, vim.vm.device.VirtualEthernetCard)),
            hardware_version=str(config.version or ""),
        )

    return conn.call(run, f"reading VM {getattr(vm, '_moId', vm)}")


def host_systems(conn: Connection) -> list[Any]:
    return [o for o, _ in collect(conn, vim.HostSystem, ["name"])]


def find_host_system(conn: Connection, name: str) -> Any | None:
    """The HostSystem this Host stands for: by name, else the only one (standalone ESXi)."""
    rows = collect(conn, vim.HostSystem, ["name"])
    named = [o for o, v in rows if v.get("name") == name]
    if len(named) == 1:
        return named[0]
    if len(rows) == 1 and not conn.is_vcenter:
        return rows[0][0]
    return None


def datastore_refs(conn: Connection, host: Any | None) -> dict[str, Any]:
    """Datastores by name: the host's, or all of the inventory's."""
    if host is not None:
        return conn.call(lambda: {str(d.name): d for d in host.datastore}, "listing datastores")
    return {str(v["name"]): o for o, v in collect(conn, vim.Datastore, ["name"])}


def datastore_ref(conn: Connection, host: Any | None, name: str) -> Any:
    refs = datastore_refs(conn, host)
    if name not in refs:
        raise DatastoreNotFound(
            f"no datastore {name!r} on {conn.where}",
            hint=f"available: {', '.join(sorted(refs)) or 'none'}",
            datastore=name,
        )
    return refs[name]


def free_space(conn: Connection, ds: Any) -> int:
    """Free bytes, refreshed first (the summary is cached by the host)."""

    def run() -> int:
        try:
            ds.RefreshDatastore()
        except (vmodl.MethodFault, OSError, http.client.HTTPException, ExpatError):
            pass  # best effort: stale figures are better than none (the agent's statvfs confirms)
        return int(ds.summary.freeSpace)

    return conn.call(run, f"reading free space of datastore {getattr(ds, '_moId', ds)}")


__all__ = [
    "DiskDetail",
    "collect",
    "datastore_ref",
    "datastore_refs",
    "disk_details",
    "find_host_system",
    "find_vm_ref",
    "free_space",
    "host_systems",
    "inventory_path",
    "to_disk_info",
    "vm_info",
]
