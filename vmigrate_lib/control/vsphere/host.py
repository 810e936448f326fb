"""VsphereHost: the :class:`~vmigrate_lib.control.host.Host` of a vCenter or ESXi host.

Control goes through the vSphere API (pyVmomi); disk bytes go through the
data-plane agent on the ESXi host, reached over SSH, which serves
``<datastore_root>/<ds>`` (``/vmfs/volumes/<ds>`` on ESXi; the constructor's
``datastore_root`` changes it for SSH hosts that mount datastores elsewhere,
e.g. a test's sshd serving a simulator's datastore folders).  The transport is
injectable so tests can serve a simulator's datastore folder with a local agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ...dataplane import ssh as ssh_dataplane
from ...dataplane.sshconfig import SshSettings
from ...errors import (
    ParameterError,
    PowerError,
    SnapshotError,
    TimeoutExpired,
)
from ...extents import Extent
from ...params import HostParams, VsphereHostParams
from .. import vmxtext
from ..dspaths import VMFS_ROOT, datastore_root
from ..host import (
    VMIGRATE_SNAPSHOT_PREFIX,
    Host,
    HostCheck,
    PowerState,
    SnapshotInfo,
    VmChange,
    VmInfo,
)
from . import (
    cbt,
    drs,
    events,
    inventory,
    macs,
    power,
    register,
    retire,
    snapshots,
    vm_checks,
)
from ._vmomi import vim
from .api_guard import guard_api
from .connection import CALL_TIMEOUT, KEEPALIVE_INTERVAL, Connection

if TYPE_CHECKING:
    from ...dataplane.datastore import Datastore
    from ...dataplane.transport import Transport
    from ..host import RetirePlan

#: (datastore name, root the agent serves, e.g. ``/vmfs/volumes/ds1``) -> transport
TransportFactory = Callable[[str, str], "Transport"]

#: Name of the snapshot taken (and removed at once) to make newly enabled CBT start.
CBT_STUN_SNAPSHOT = f"{VMIGRATE_SNAPSHOT_PREFIX}cbt-stun"


def open_ssh_datastore(hp: HostParams, name: str, root: str) -> Datastore:
    """The datastore through the SSH data plane to the ESXi host (``dataplane.ssh``)."""
    return ssh_dataplane.open_ssh_datastore(name, root, SshSettings.from_host_params(hp))


@guard_api
class VsphereHost(Host):
    """One ESXi host, directly or through a vCenter (``host`` names it there)."""

    def __init__(
        self,
        hp: VsphereHostParams,
        *,
        transport_factory: TransportFactory | None = None,
        password: str | None = None,
        keepalive: float | None = KEEPALIVE_INTERVAL,
        task_timeout: float = 300.0,
        snapshot_timeout: float = snapshots.CREATE_TIMEOUT,
        datastore_root: str = VMFS_ROOT,
        call_timeout: float = CALL_TIMEOUT,
        snapshot_remove_timeout: float = snapshots.REMOVE_TIMEOUT,
        allow_consolidate: bool = False,
    ) -> None:
        self.hp = hp
        self._notes: list[str] = []  # for take_notes: what this host changed on its own
        #: where the SSH host mounts datastores by name (ESXi: /vmfs/volumes)
        self.datastore_root = datastore_root
        self.conn = Connection(hp, password=password, keepalive=keepalive,
                               call_timeout=call_timeout)
        try:
            self.host_ref: Any | None = inventory.find_host_system(self.conn, hp.host)
            self.name = hp.host or (
                str(self.host_ref.name) if self.host_ref is not None else self.conn.host
            )
            self._transport_factory = transport_factory
            self.task_timeout = task_timeout
            self.snapshot_timeout = snapshot_timeout
            #: removal and consolidation: long under write load; a longer one is waited
            #: for by the next run (it goes on on the host)
            self.snapshot_remove_timeout = snapshot_remove_timeout
            #: a VM found running on a delta is consolidated before the first snapshot
            #: (ConsolidateVMDisks_Task) instead of refused
            self.allow_consolidate = allow_consolidate
            self.vm_folder_ref: Any | None = (
                register.resolve_entity(self.conn, hp.vm_folder, vim.Folder, "VM folder")
                if hp.vm_folder
                else None
            )
            self.pool_ref: Any | None = (
                register.resolve_entity(self.conn, hp.resource_pool, vim.ResourcePool,
                                        "resource pool")
                if hp.resource_pool
                else None
            )
        except BaseException:
            self.conn.close()
            raise

    # --- helpers -------------------------------------------------------------------------
    def vm_ref(self, vm: str) -> Any:
        """The VirtualMachine object for a name, inventory path or UUID."""
        return inventory.find_vm_ref(self.conn, vm)

    def disk_details(self, vm: str) -> list[inventory.DiskDetail]:
        """Disks with what :class:`DiskInfo` leaves out: mode, current backing, change id."""
        ref = self.vm_ref(vm)
        return self.conn.call(lambda: inventory.disk_details(ref.config), f"reading VM {vm}")

    def _require_host(self, what: str) -> Any:
        if self.host_ref is None:
            raise ParameterError(
                f"{what} needs one ESXi host, and {self.hp.host!r} names none on {self.conn.where}",
                hint="set host to the ESXi host's name as vCenter shows it",
                parameter="host",
            )
        return self.host_ref

    # --- inventory -------------------------------------------------------------------------
    def find_vm(self, name: str) -> VmInfo:
        return inventory.vm_info(self.conn, self.vm_ref(name))

    def vm_exists(self, name: str) -> bool:
        rows = inventory.collect(self.conn, vim.VirtualMachine, ["name"])
        return any(v.get("name") == name for _, v in rows)

    def datastores(self) -> list[str]:
        return sorted(inventory.datastore_refs(self.conn, self.host_ref))

    def open_datastore(self, name: str) -> Datastore:
        from ...dataplane.client import AgentDatastore

        inventory.datastore_ref(self.conn, self.host_ref, name)
        root = datastore_root(name, self.datastore_root)
        if self._transport_factory is not None:
            return AgentDatastore(name, self._transport_factory(name, root))
        return open_ssh_datastore(self.hp, name, root)

    # --- change tracking ------------------------------------------------------------------
    def enable_change_tracking(self, vm: str) -> VmInfo:
        """Turn CBT on; a running VM then gets the stun it needs (snapshot create + remove).

        Refuses, changing nothing, while the VM has snapshots."""
        ref = self.vm_ref(vm)
        snapshots.wait_running(self.conn, ref, vm, self.snapshot_remove_timeout)
        snapshots.require_no_snapshots(self.conn, ref, VMIGRATE_SNAPSHOT_PREFIX)
        snapshots.require_flat(self.conn, ref, vm, self.allow_consolidate,
                               self.snapshot_remove_timeout)
        if cbt.enable(self.conn, ref, self.task_timeout) and (
            power.state(self.conn, ref) == PowerState.ON
        ):
            snap = snapshots.create(
                self.conn, ref, CBT_STUN_SNAPSHOT, "vmigrate: start change tracking", False,
                self.snapshot_timeout,
            )
            snapshots.remove(self.conn, ref, snap.id, self.snapshot_remove_timeout)
        return inventory.vm_info(self.conn, ref)

    def query_changed_areas(
        self, vm: str, snapshot: SnapshotInfo, disk_key: int, since: str
    ) -> Iterator[Extent]:
        ref = self.vm_ref(vm)
        snap = snapshots.find_snapshot(self.conn, ref, snapshot.id)
        if snap is None:
            raise SnapshotError(
                f"VM {vm} has no snapshot {snapshot.id} ({snapshot.name})",
                vm=vm,
                snapshot_id=snapshot.id,
            )
        return iter(cbt.query_changed(self.conn, ref, snap, snapshot, disk_key, since))

    # --- snapshots -----------------------------------------------------------------------
    def list_snapshots(self, vm: str) -> list[SnapshotInfo]:
        return snapshots.list_snapshots(self.conn, self.vm_ref(vm))

    def create_snapshot(
        self, vm: str, name: str, description: str = "", quiesce: bool = False
    ) -> SnapshotInfo:
        """Refuses, changing nothing, while any snapshot exists (the base would be a delta)."""
        ref = self.vm_ref(vm)
        snapshots.wait_running(self.conn, ref, vm, self.snapshot_remove_timeout)
        snapshots.require_no_snapshots(self.conn, ref, VMIGRATE_SNAPSHOT_PREFIX)
        snapshots.require_flat(self.conn, ref, vm, self.allow_consolidate,
                               self.snapshot_remove_timeout)
        return snapshots.create(self.conn, ref, name, description, quiesce, self.snapshot_timeout)

    def remove_snapshot(self, vm: str, snapshot_id: str, timeout: float | None = None) -> None:
        """Remove and consolidate; a snapshot already gone counts as removed (re-runs).
        ``timeout``: default ``snapshot_remove_timeout``."""
        snapshots.remove(self.conn, self.vm_ref(vm), snapshot_id,
                         self.snapshot_remove_timeout if timeout is None else timeout)

    # --- power ---------------------------------------------------------------------------
    def power_state(self, vm: str) -> PowerState:
        return power.state(self.conn, self.vm_ref(vm))

    def power_on(self, vm: str, timeout: float = 120.0) -> None:
        """Answers the "moved or copied" question, reports any other one at once
        (:mod:`.questions`), then checks that each NIC connected."""
        power.power_on(self.conn, self.vm_ref(vm), timeout, self._notes, check_nics=True)

    def power_off(self, vm: str, timeout: float = 120.0) -> None:
        power.power_off(self.conn, self.vm_ref(vm), timeout)

    def shutdown_guest(self, vm: str) -> None:
        power.shutdown_guest(self.conn, self.vm_ref(vm))

    def changes_since(self, vm: str, since: float) -> list[VmChange] | None:
        """From vCenter's event history (:mod:`.events`); None on a standalone ESXi."""
        return events.changes_since(self.conn, self.vm_ref(vm), since)

    def wait_powered_off(self, vm: str, timeout: float) -> bool:
        """The VM is looked up once, then its power state read every 0.5 s
        (:func:`power.wait_off`), not the engine's rate."""
        try:
            power.wait_off(self.conn, self.vm_ref(vm), timeout)
        except TimeoutExpired:
            return False
        return True

    # --- registration and readiness -------------------------------------------------------
    def register_vm(
        self,
        name: str,
        datastore: str,
        folder: str,
        source: VmInfo,
        network_map: Mapping[str, str] | None = None,
    ) -> VmInfo:
        """Register ``[datastore] folder/<name>.vmx`` (written there beforehand)."""
        host = self._require_host(f"registering {name}")
        ref = register.register(
            self.conn, host, name, datastore, folder, network_map,
            self.vm_folder_ref, self.pool_ref, self.task_timeout,
        )
        return register.verify_macs(self.conn, ref, name, source)

    def migration_checks(self, vm: VmInfo) -> list[HostCheck]:
        """The licence, then the VM's own checks (:func:`.vm_checks.source_checks`)."""
        return vm_checks.source_checks(self, vm)

    def destination_checks(self, vm: VmInfo) -> list[HostCheck]:
        """Hardware version, SSH, privileges here (:func:`.vm_checks.destination_checks`)."""
        return vm_checks.destination_checks(self, vm)

    def recheck(self, vm: VmInfo) -> list[HostCheck]:
        """Before every cycle: host, disk kinds, placement (:func:`.vm_checks.recheck`)."""
        return vm_checks.recheck(self, vm)

    def prepare_config_files(
        self,
        name: str,
        source: VmInfo,
        files: Mapping[str, bytes],
        renames: Mapping[str, str],
    ) -> dict[str, bytes]:
        """Bob's ``<name>.vmx`` and disk descriptors naming his files (:mod:`..vmxtext`);
        files this host cannot reach are disconnected or dropped, with a note."""
        return macs.static_in(vmxtext.prepare, name, source, files, renames,
                              self._volumes(), self._notes)

    def _volumes(self) -> list[str]:
        """The datastores this host mounts, by name and by volume UUID (summary.url)."""
        refs = inventory.datastore_refs(self.conn, self.host_ref)
        urls = self.conn.call(lambda: [str(d.summary.url or "") for d in refs.values()],
                              "reading datastore URLs")
        return [*refs, *(u.rstrip("/").rsplit("/", 1)[-1] for u in urls if u)]

    def take_notes(self) -> list[str]:
        notes, self._notes[:] = list(self._notes), []
        return notes

    # --- retiring the source (cutover.identity: retire-source; :mod:`.retire`) ---------
    def in_autostart(self, vm: str) -> bool | None:
        """From the VM's host's HostAutoStartManager (its powerInfo entry for the VM)."""
        entry = self.conn.call(lambda: retire.autostart_entry(self.vm_ref(vm)),
                               f"reading the autostart of {vm}")
        return entry is not None and str(entry.get("startAction", "")).lower() == "poweron"

    def retire_plan(self, vm: str, new_name: str, note: str) -> RetirePlan | None:
        """Reads her NICs' start-connected flags, autostart entry and annotation."""
        return retire.plan(self.conn, self.vm_ref(vm), new_name, note)

    def retire_vm(self, plan: RetirePlan) -> None:
        retire.apply(self.conn, plan, self.task_timeout)

    def restore_vm(self, plan: RetirePlan) -> None:
        retire.restore(self.conn, plan, self.task_timeout)

    def hold_placement(self, vm: str) -> dict[str, Any] | None:
        """DRS automation of ``vm`` set to manual for the migration (:mod:`.drs`)."""
        return drs.hold(self.conn, self.vm_ref(vm), self.task_timeout)

    def release_placement(self, vm: str, saved: Mapping[str, Any]) -> None:
        drs.release(self.conn, self.vm_ref(vm), saved, self.task_timeout)

    def unregister_vm(self, name: str) -> None:
        ref = self.vm_ref(name)
        if power.state(self.conn, ref) != PowerState.OFF:
            raise PowerError(f"VM {name} is powered on; power it off before unregistering", vm=name)
        register.unregister(self.conn, ref)

    def wait_ready(self, vm: str, timeout: float) -> VmInfo:
        """Tools running, an IP and a green heartbeat (TimeoutExpired says which is missing)."""
        ref = self.vm_ref(vm)
        power.wait_ready(self.conn, ref, timeout)
        return inventory.vm_info(self.conn, ref)

    def close(self) -> None:
        self.conn.close()


__all__ = ["CBT_STUN_SNAPSHOT", "TransportFactory", "VsphereHost", "open_ssh_datastore"]
