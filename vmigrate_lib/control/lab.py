"""The embedded lab hypervisor behind the :class:`Host` interface.

Hosts are folders, VMs are config files plus sparse flat disks, a running VM is
a guest process (see :mod:`vmigrate_lib.lab`).  Everything lives on disk, so a
sync in one process and a cutover in another, days later, see the same lab.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    DatastoreNotFound,
    DestinationExists,
    HostNotFound,
    LabError,
    PowerError,
    SnapshotError,
    TimeoutExpired,
    ToolsUnavailable,
)
from ..extents import Extent
from ..lab import events as vm_events
from ..lab.acks import ack_path
from ..lab.changes import changed_areas
from ..lab.handle import VmHandle, log_tail
from ..lab.inventory import Inventory
from ..lab.layout import RUNTIME_SUFFIXES, VMX_SUFFIX, LabLayout, disk_stem
from ..lab.power import child_running, kill_guest, spawn_guest
from ..lab.registration import config_for_copy, guest_ip_for
from ..lab.vmconfig import SnapshotRecord, VmConfig
from ..lab.workload import WorkloadSpec
from .host import DiskInfo, Host, PowerState, RetirePlan, SnapshotInfo, VmChange, VmInfo

if TYPE_CHECKING:
    from ..dataplane.datastore import Datastore
    from ..dataplane.sshconfig import SshSettings


class LabHost(Host):
    """One lab host: ``<root>/hosts/<host>``."""

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

    # --- power -------------------------------------------------------------------------
    def power_state(self, vm: str) -> PowerState:
        return PowerState.ON if self.handle(vm).pid() is not None else PowerState.OFF

    def power_on(self, vm: str, timeout: float = 120.0) -> None:
        """Start the guest; returns once it answers (its boot check may still run)."""
        h = self.handle(vm)
        with h.locked(timeout):
            if h.pid() is not None:
                return
            h.config()  # a damaged config fails here, not in the guest
            child = spawn_guest(h.vmdir, h.loc.config_file)

            def up(st: dict[str, Any] | None) -> bool:
                # the guest is known once it holds its power lock; until then our child
                # lives (or gave way to a guest started by a killed earlier launcher)
                if st is None and h.pid() is None and not child_running(child):
                    raise PowerError(
                        f"VM {vm} stopped while powering on", vm=vm, log=log_tail(h.vmdir)
                    )
                return st is not None

            h.wait_state(up, timeout, "power on")

    def power_off(self, vm: str, timeout: float = 120.0) -> None:
        h = self.handle(vm)
        with h.locked(timeout):
            kill_guest(h.vmdir, timeout)

    def shutdown_guest(self, vm: str) -> None:
        """As ``ShutdownGuest``: a guest without VMware Tools (``tools: false``) cannot
        be asked, :class:`ToolsUnavailable` at once (a powered-off VM: PowerError)."""
        h = self.handle(vm)
        if h.pid() is not None and not h.config().tools:
            raise ToolsUnavailable(f"guest shutdown of VM {vm} failed: VMware Tools are not "
                                   "running in the guest", vm=vm)
        h.guest("shutdown", 10.0)

    def set_tools(self, vm: str, running: bool) -> None:
        """Give the guest VMware Tools or take them away (live if it runs)."""

        def offline(m: Any) -> None:
            m.config.tools = running
            m.save()

        self.handle(vm).run("set_tools", offline, lambda r: None, tools=running)

    def is_runtime_file(self, name: str) -> bool:
        """VMware's runtime files and the lab's own (:data:`~vmigrate_lib.lab.layout.RUNTIME_SUFFIXES`)."""
        return super().is_runtime_file(name) or name.endswith(RUNTIME_SUFFIXES)

    def set_workload(self, vm: str, spec: WorkloadSpec) -> None:
        """Change a VM's workload (live if it runs); e.g. ``rate_mb_s=0`` to quiesce it."""
        spec.validate()

        def offline(m: Any) -> None:
            m.config.workload = spec
            m.save()

        self.handle(vm).run("set_workload", offline, lambda r: None, workload=spec.to_dict())

    def flush_acks(self, vm: str) -> None:
        """Make the running guest persist its ack map now (tests, evidence)."""
        self.handle(vm).guest("flush_acks")

    # --- registration ------------------------------------------------------------------
    def register_vm(
        self,
        name: str,
        datastore: str,
        folder: str,
        source: VmInfo,
        network_map: Mapping[str, str] | None = None,
    ) -> VmInfo:
        vmdir = self.datastore_path(datastore) / folder
        with self.inventory.locked() as entries:
            cfg_file = f"{name}{VMX_SUFFIX}"
            want = f"[{datastore}] {folder}/{cfg_file}"
            if name in entries:
                if entries[name] == want:
                    return self.find_vm(name)  # re-run after a crash: already done
                raise DestinationExists(
                    f"a VM named {name!r} is already registered on {self.name}", vm=name
                )
            cfg = config_for_copy(vmdir, name, source, network_map, self.register_workload)
            if (vmdir / cfg_file).is_file():  # the source's config, copied: its guest's tools
                cfg.tools = VmConfig.load(vmdir / cfg_file).tools
            cfg.save(vmdir / cfg_file)
            entries[name] = want
        return self.find_vm(name)

    # --- retiring the source (cutover.identity: retire-source) ---------------------------
    def retire_plan(self, vm: str, new_name: str, note: str) -> RetirePlan | None:
        """A lab VM has a name to give up (inventory and config) but no NIC link state
        and no autostart: the rename is the whole retire."""
        return RetirePlan(name=vm, new_name=new_name, vm_id=self.config(vm).uuid,
                          saved={"note": note})

    def retire_vm(self, plan: RetirePlan) -> None:
        self._rename(plan, plan.name, plan.new_name)

    def restore_vm(self, plan: RetirePlan) -> None:
        self._rename(plan, plan.new_name, plan.name)

    def _rename(self, plan: RetirePlan, old: str, new: str) -> None:
        """Inventory entry, then config name (a re-run finishes either); only the VM
        the plan names (its uuid) is renamed."""
        with self.inventory.locked() as entries:
            if new not in entries:
                if VmHandle(self.inventory.locate(old)).config().uuid != plan.vm_id:
                    raise DestinationExists(f"VM {old} on {self.name} is not the VM vmigrate "
                                            f"retired ({plan.vm_id})", vm=old)
                entries[new] = entries.pop(old)
        h = self.handle(new)
        if h.config().uuid != plan.vm_id:
            raise DestinationExists(f"a VM named {new!r} is already registered on {self.name}",
                                    vm=new)
        with h.locked():
            cfg = h.config()
            if cfg.name != new:
                cfg.name = new
                cfg.save(h.loc.config_path)

    def unregister_vm(self, name: str) -> None:
        h = self.handle(name)
        if h.pid() is not None:
            raise PowerError(f"VM {name} is powered on; power it off before unregistering", vm=name)
        self.inventory.remove(name)

    def wait_ready(self, vm: str, timeout: float) -> VmInfo:
        """Wait for the boot check and VMware Tools (a guest with ``tools: false`` never
        gets there, as on ESXi); a failed check (torn or missing blocks) raises LabError."""
        if not self.config(vm).tools:
            t0 = time.monotonic()
            self.wait_running(vm, timeout)  # a failed boot check still says so first
            time.sleep(max(0.0, timeout - (time.monotonic() - t0)))  # Tools never come
            raise TimeoutExpired(f"VM {vm} was not ready within {timeout:.0f} s: no VMware "
                                 "Tools running", vm=vm, timeout=timeout,
                                 hint="check the guest's VMware Tools, or use cutover.ready: "
                                 "power-and-probes with probes")
        return self.wait_running(vm, timeout)

    def wait_running(self, vm: str, timeout: float) -> VmInfo:
        """Powered on and the boot check passed (it proves the copy; no Tools needed)."""
        h = self.handle(vm)

        def ready(st: dict[str, Any] | None) -> bool:
            if st is None:
                if h.pid() is None:
                    raise PowerError(f"VM {vm} is powered off", vm=vm, log=log_tail(h.vmdir))
                return False
            if st.get("state") == "boot-failed":
                problems = [p for d in st["boot"]["disks"] for p in d["problems"]]
                raise LabError(
                    f"VM {vm} failed its boot check: {'; '.join(problems)}",
                    vm=vm,
                    boot=st["boot"],
                    hint="the copy is damaged or incomplete; re-run the final sync and certify",
                )
            return st.get("state") == "running"

        h.wait_state(ready, timeout, "boot check")
        return self.find_vm(vm)


__all__ = ["LabHost", "guest_ip_for"]
