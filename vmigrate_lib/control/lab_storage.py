"""The embedded lab's VMs as stored: inventory, datastores, change tracking, disks, snapshots.

The half of :class:`~vmigrate_lib.control.lab.LabHost` that reads and reshapes what lies
on disk; ``lab.py`` adds what runs (power, the guest, registration, readiness).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DatastoreNotFound, HostNotFound, LabError, PowerError, SnapshotError
from ..extents import Extent
from ..lab import events as vm_events
from ..lab.acks import ack_path
from ..lab.changes import changed_areas
from ..lab.handle import VmHandle
from ..lab.inventory import Inventory
from ..lab.layout import LabLayout, disk_stem
from ..lab.vmconfig import SnapshotRecord, VmConfig
from ..lab.workload import WorkloadSpec
from .host import DiskInfo, Host, PowerState, SnapshotInfo, VmChange, VmInfo

if TYPE_CHECKING:
    from ..dataplane.datastore import Datastore
    from ..dataplane.sshconfig import SshSettings


class LabStorage(Host):
    """One lab host's VMs as stored: ``<root>/hosts/<host>``, its inventory, datastores,
    change tracking, disks and snapshots (:class:`~vmigrate_lib.control.lab.LabHost` adds
    power, registration and readiness)."""

    #: reading a lab VM's power state is a local lock check: cheap to poll often
    power_poll_interval = 0.05

    def __init__(
        self, root: Path | str, host: str, *, register_workload: WorkloadSpec | None = None,
        datastore_ssh: SshSettings | None = None,
    ) -> None:
        self.layout = LabLayout(Path(root).resolve())
        self.name = host
        if not self.layout.host_dir(host).is_dir():
            raise HostNotFound(
                f"no lab host {host!r} under {self.layout.root}",
                host=host,
                root=str(self.layout.root),
                hint="run `vmigrate lab up` first, or check the lab root and host name",
            )
        self.inventory = Inventory(self.layout, host)
        #: workload a VM registered here runs once powered on (Bob after cutover)
        self.register_workload = register_workload or WorkloadSpec()
        #: an SshSettings: serve this host's datastores through an agent over SSH
        #: (a lab host behind sshd in a network namespace) instead of a local one
        self.datastore_ssh = datastore_ssh

    # --- helpers -----------------------------------------------------------------------
    def handle(self, vm: str) -> VmHandle:
        return VmHandle(self.inventory.locate(vm))

    def vm_dir(self, vm: str) -> Path:
        return self.handle(vm).vmdir

    def config(self, vm: str) -> VmConfig:
        return self.handle(vm).config()

    def ack_path(self, vm: str, disk_key: int) -> Path:
        """Where the guest keeps (and the boot check looks for) a disk's ack map."""
        return ack_path(self.vm_dir(vm), disk_key)

    def guest_status(self, vm: str) -> dict[str, Any] | None:
        return self.handle(vm).status()

    def _snapshot_info(self, h: VmHandle, cfg: VmConfig, rec: SnapshotRecord) -> SnapshotInfo:
        return SnapshotInfo(
            id=rec.id,
            name=rec.name,
            created=rec.created,
            change_ids=dict(rec.change_ids),
            disk_paths={d.key: f"{h.loc.folder}/{d.file}" for d in cfg.disks},
            description=rec.description,
        )

    # --- inventory ---------------------------------------------------------------------
    def find_vm(self, name: str) -> VmInfo:
        h = self.handle(name)
        cfg = h.config()
        st = h.status()
        power = PowerState.ON if st is not None or h.pid() is not None else PowerState.OFF
        tools = st is not None and st.get("state") == "running" and cfg.tools
        disks = tuple(
            DiskInfo(
                key=d.key,
                label=d.label,
                datastore=h.loc.datastore,
                path=f"{h.loc.folder}/{d.file}",
                capacity=d.capacity,
                thin=True,
                cbt_enabled=cfg.cbt_enabled,
            )
            for d in cfg.disks
        )
        return VmInfo(
            name=cfg.name,
            uuid=cfg.uuid,
            host=self.name,
            power=power,
            datastore=h.loc.datastore,
            folder=h.loc.folder,
            disks=disks,
            guest_ip=cfg.guest_ip if tools else None,
            tools_running=tools,
        )

    def vm_exists(self, name: str) -> bool:
        return self.inventory.lookup(name) is not None

    def datastores(self) -> list[str]:
        return self.layout.datastores(self.name)

    def datastore_path(self, name: str) -> Path:
        path = self.layout.datastore_dir(self.name, name)
        if not path.is_dir():
            raise DatastoreNotFound(
                f"no datastore {name!r} on lab host {self.name}", datastore=name, host=self.name
            )
        return path

    def open_datastore(self, name: str) -> Datastore:
        from ..dataplane import open_local_datastore

        if self.datastore_ssh is not None:
            from ..dataplane import open_ssh_datastore

            return open_ssh_datastore(name, str(self.datastore_path(name)), self.datastore_ssh)
        return open_local_datastore(name, str(self.datastore_path(name)))

    # --- change tracking ---------------------------------------------------------------
    def enable_change_tracking(self, vm: str) -> VmInfo:
        self.handle(vm).run("cbt_enable", lambda m: m.enable_change_tracking(), lambda r: None)
        return self.find_vm(vm)

    def reset_change_tracking(self, vm: str) -> None:
        """Start a new CBT epoch (as after a storage vMotion): old change ids turn invalid."""
        self.handle(vm).run("cbt_reset", lambda m: m.reset_change_tracking(), lambda r: None)

    def changes_since(self, vm: str, since: float) -> list[VmChange] | None:
        """The lab VM's own history (:mod:`vmigrate_lib.lab.events`)."""
        return vm_events.since(self.vm_dir(vm), since)

    def query_changed_areas(
        self, vm: str, snapshot: SnapshotInfo, disk_key: int, since: str
    ) -> Iterator[Extent]:
        h = self.handle(vm)
        return iter(changed_areas(h.vmdir, h.config(), snapshot.id, disk_key, since))

    # --- disks -------------------------------------------------------------------------
    def resize_disk(self, vm: str, disk_key: int, new_capacity: int) -> VmInfo:
        """Grow a disk, live (through the guest) or powered off; never shrinks.

        Refused while the VM has a snapshot.  The disk's change tracking starts a
        new epoch (old change ids turn invalid, as on VMware after an extend).
        A running guest's workload uses the new size at once.
        """
        self.handle(vm).run(
            "disk_resize",
            lambda m: m.resize_disk(disk_key, new_capacity),
            lambda r: None,
            key=disk_key,
            capacity=new_capacity,
        )
        vm_events.record(self.vm_dir(vm), "extend", f"disk {disk_key} extended to {new_capacity}")
        return self.find_vm(vm)

    def add_disk(self, vm: str, capacity: int) -> DiskInfo:
        """Add a new empty sparse disk (next free key), live or powered off."""
        key = self.handle(vm).run(
            "disk_add", lambda m: m.add_disk(capacity).key, lambda r: int(r["key"]),
            capacity=capacity,
        )
        vm_events.record(self.vm_dir(vm), "reconfigure", f"disk {key} added")
        return next(d for d in self.find_vm(vm).disks if d.key == key)

    def remove_disk(self, vm: str, disk_key: int) -> VmInfo:
        """Detach a disk (live or off); its files stay in the VM's folder."""
        self.handle(vm).run(
            "disk_remove", lambda m: m.remove_disk(disk_key), lambda r: None, key=disk_key,
        )
        vm_events.record(self.vm_dir(vm), "reconfigure", f"disk {disk_key} removed")
        return self.find_vm(vm)

    # --- snapshots ---------------------------------------------------------------------
    def list_snapshots(self, vm: str) -> list[SnapshotInfo]:
        h = self.handle(vm)
        cfg = h.config()
        return [self._snapshot_info(h, cfg, s) for s in cfg.snapshots]

    def create_snapshot(
        self, vm: str, name: str, description: str = "", quiesce: bool = False,
        keep_older: bool = False,
    ) -> SnapshotInfo:
        """``quiesce`` is accepted and ignored: the lab guest has no file system to quiesce.
        ``keep_older`` (lab only, for now) puts the snapshot on top of existing ones (a
        chain of SEsparse deltas); without it a second snapshot is refused."""
        h = self.handle(vm)
        try:
            rec = h.run(
                "snapshot_create",
                lambda m: m.create_snapshot(name, description, keep_older=keep_older),
                lambda r: SnapshotRecord.from_dict(r["snapshot"]),
                name=name,
                description=description,
                keep_older=keep_older,
            )
        except (SnapshotError, PowerError):
            raise
        except LabError as exc:
            raise SnapshotError(f"snapshot of {vm} failed: {exc.message}", vm=vm) from exc
        return self._snapshot_info(h, h.config(), rec)

    keeps_snapshot_chain = True

    def create_snapshot_on_top(self, vm: str, name: str, description: str = "") -> SnapshotInfo:
        """A snapshot over the existing ones (the lab chains SEsparse deltas)."""
        others = [s.name for s in self.list_snapshots(vm) if not s.is_vmigrate]
        if others:
            raise SnapshotError(f"VM {vm} has snapshots vmigrate did not make: "
                                f"{', '.join(others)}", vm=vm, existing=others)
        return self.create_snapshot(vm, name, description, keep_older=True)

    def snapshot_deltas(self, vm: str, snapshot_id: str) -> dict[int, str]:
        """Snapshot ``snapshot-N``'s delta of each disk is ``<stem>-00000N.vmdk``."""
        h = self.handle(vm)
        number = int(snapshot_id.rpartition("-")[2])
        where = f"[{h.loc.datastore}] {h.loc.folder}"
        return {d.key: f"{where}/{disk_stem(d.file)}-{number:06d}.vmdk" for d in h.config().disks}

    def remove_snapshot(self, vm: str, snapshot_id: str, timeout: float = 600.0) -> None:
        h = self.handle(vm)
        try:
            h.run(
                "snapshot_remove",
                lambda m: m.remove_snapshot(snapshot_id),
                lambda r: r["stun_s"],
                timeout=timeout,
                id=snapshot_id,
            )
        except (SnapshotError, PowerError):
            raise
        except LabError as exc:
            raise SnapshotError(
                f"removing snapshot {snapshot_id} of {vm} failed: {exc.message}",
                vm=vm,
                snapshot_id=snapshot_id,
                hint="run remove again (consolidation resumes) or power the VM on (it finishes it)",
            ) from exc
