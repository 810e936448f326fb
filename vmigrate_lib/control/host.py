"""The control-plane interface the engine drives: one host (ESXi, vCenter, lab).

The engine knows only this interface and :class:`vmigrate_lib.dataplane.Datastore`;
implementations live beside it (``lab``, ``vsphere``) and convert their own faults
into :mod:`vmigrate_lib.errors` at their boundary.  Optional capabilities have a
default here (as pyinfra's connectors declare theirs), so the engine calls them on
any host and never asks which implementation it has.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

from ..errors import TimeoutExpired, VmigrateError
from ..extents import Extent
from ..modes import DiskFormat

if TYPE_CHECKING:
    from ..dataplane.datastore import Datastore

#: Change-tracking granularity of VMware CBT and of the lab.
CBT_GRAIN = 64 * 1024

#: Pass as ``since`` to :meth:`Host.query_changed_areas` to get the allocated areas.
ALL_ALLOCATED = "*"


class PowerState(StrEnum):
    ON = "poweredOn"
    OFF = "poweredOff"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class DiskInfo:
    """One virtual disk as the control plane sees it."""

    key: int  #: device key, stable across cycles (VMware: 2000, 2001, ...)
    label: str  #: "Hard disk 1"
    datastore: str  #: datastore name, e.g. "datastore1"
    path: str  #: flat file path relative to the datastore root, e.g. "alice/alice-flat.vmdk"
    capacity: int  #: bytes
    thin: bool = True
    cbt_enabled: bool = False
    #: how the disk is provisioned; Bob's copy is created the same way where the host can
    provisioning: DiskFormat = "thin"

    @property
    def ds_path(self) -> str:
        """VMware notation: ``[datastore1] alice/alice-flat.vmdk``."""
        return f"[{self.datastore}] {self.path}"


@dataclass(frozen=True)
class VmInfo:
    name: str
    uuid: str
    host: str
    power: PowerState
    datastore: str  #: datastore holding the VM's folder
    folder: str  #: VM folder relative to the datastore root
    disks: tuple[DiskInfo, ...]
    guest_ip: str | None = None
    tools_running: bool = False
    #: each NIC's MAC address, in device order (empty: the host does not say)
    macs: tuple[str, ...] = ()
    hardware_version: str = ""  #: VMware ``config.version``, e.g. ``vmx-13``; "" if none


@dataclass(frozen=True)
class RetirePlan:
    """How a source VM is retired at cutover, and put back by a rollback.

    What the host found before changing anything: the engine saves it in the
    workspace first, so a resumed retire or a rollback restores what was there,
    never what a half-done retire left.  ``saved`` is the host's own (JSON):
    vSphere keeps each NIC's start-connected flag, the autostart entry, the note."""

    name: str  #: the VM's name before
    new_name: str  #: its name while retired
    vm_id: str  #: the host's stable id for it (vSphere: config.instanceUuid)
    saved: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "new_name": self.new_name, "vm_id": self.vm_id,
                "saved": dict(self.saved)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetirePlan:
        return cls(name=str(d["name"]), new_name=str(d["new_name"]), vm_id=str(d["vm_id"]),
                   saved=dict(d.get("saved") or {}))


@dataclass(frozen=True)
class SnapshotInfo:
    """A point-in-time freeze of a VM's disks.

    ``disk_paths`` names, per disk key, the frozen file the data plane reads
    (the base disk under the snapshot); ``change_ids`` the change id of each disk
    at the snapshot point, to be used as ``since`` in the next cycle.
    """

    id: str
    name: str
    created: float
    change_ids: Mapping[int, str] = field(default_factory=dict)
    disk_paths: Mapping[int, str] = field(default_factory=dict)
    description: str = ""

    @property
    def is_vmigrate(self) -> bool:
        return self.name.startswith(VMIGRATE_SNAPSHOT_PREFIX)


@dataclass(frozen=True)
class VmChange:
    """Something done to a VM that change tracking may not show: a revert to a
    snapshot, a disk extended or added, a reconfiguration of its disks or of change
    tracking.  Read from the host's own history (vSphere: its events)."""

    kind: str  #: revert | extend | reconfigure
    at: float  #: when, seconds since the epoch
    detail: str  #: one line, the host's words


@dataclass(frozen=True)
class HostCheck:
    """One line of preflight contributed by a host implementation."""

    name: str
    ok: bool
    detail: str
    error: VmigrateError | None = None


#: Every snapshot vmigrate creates starts with this, so that it never touches others'.
VMIGRATE_SNAPSHOT_PREFIX = "vmigrate-"

#: A VMware VM folder's runtime state, never copied to a new VM: logs, locks, swap,
#: suspended memory and snapshot memory, change-tracking files, snapshot deltas
#: (VMware vSphere documentation, "Virtual Machine Files").
VMWARE_RUNTIME_SUFFIXES = (".log", ".lck", ".vswp", ".vmem", ".vmsn", "-ctk.vmdk",
                           "-delta.vmdk", "-sesparse.vmdk")


class Host(abc.ABC):
    """One hypervisor host (or a vCenter scoped to one host) and its datastores."""

    name: str

    # --- inventory ---------------------------------------------------------------
    @abc.abstractmethod
    def find_vm(self, name: str) -> VmInfo:
        """The VM called ``name``; :class:`~vmigrate_lib.errors.VmNotFound` if none."""

    @abc.abstractmethod
    def vm_exists(self, name: str) -> bool:
        """Whether a VM of that name is registered here (name-clash check)."""

    @abc.abstractmethod
    def datastores(self) -> list[str]:
        """Names of the datastores this host can reach."""

    @abc.abstractmethod
    def open_datastore(self, name: str) -> Datastore:
        """A data-plane handle on one datastore (starts its agent if needed)."""

    # --- change tracking ------------------------------------------------------------
    @abc.abstractmethod
    def enable_change_tracking(self, vm: str) -> VmInfo:
        """Turn CBT on (only when the operator allowed it); returns the new state."""

    @abc.abstractmethod
    def query_changed_areas(
        self, vm: str, snapshot: SnapshotInfo, disk_key: int, since: str
    ) -> Iterator[Extent]:
        """Extents of ``disk_key`` changed between change id ``since`` and ``snapshot``.

        ``since == "*"`` yields the allocated areas.  Extents come sorted and
        aligned to :data:`CBT_GRAIN`.  Raises
        :class:`~vmigrate_lib.errors.ChangeIdInvalid` when ``since`` is not in
        the disk's current epoch.
        """

    # --- snapshots ----------------------------------------------------------------
    @abc.abstractmethod
    def list_snapshots(self, vm: str) -> list[SnapshotInfo]: ...

    @abc.abstractmethod
    def create_snapshot(
        self, vm: str, name: str, description: str = "", quiesce: bool = False
    ) -> SnapshotInfo:
        """Freeze the disks without memory; the guest keeps running on a delta."""

    @abc.abstractmethod
    def remove_snapshot(self, vm: str, snapshot_id: str, timeout: float = 600.0) -> None:
        """Remove and consolidate; returns when consolidation is done."""

    # --- power ---------------------------------------------------------------------
    @abc.abstractmethod
    def power_state(self, vm: str) -> PowerState: ...

    @abc.abstractmethod
    def power_on(self, vm: str, timeout: float = 120.0) -> None: ...

    @abc.abstractmethod
    def power_off(self, vm: str, timeout: float = 120.0) -> None:
        """Hard power-off (no guest flush)."""

    @abc.abstractmethod
    def shutdown_guest(self, vm: str) -> None:
        """Ask the guest to shut down; returns at once (poll :meth:`power_state`)."""

    # --- registration and readiness (cutover) --------------------------------------
    @abc.abstractmethod
    def register_vm(
        self,
        name: str,
        datastore: str,
        folder: str,
        source: VmInfo,
        network_map: Mapping[str, str] | None = None,
    ) -> VmInfo:
        """Register a VM from disk files already in ``[datastore] folder``."""

    # --- optional capabilities: each has a default that works on any host ------------
    #: seconds between power-state reads in the default :meth:`wait_powered_off`
    power_poll_interval: float = 1.0

    def wait_powered_off(self, vm: str, timeout: float) -> bool:
        """Wait until ``vm`` is powered off, at most ``timeout`` seconds (after
        :meth:`shutdown_guest`); True once it is off, False at the deadline.

        The default reads :meth:`power_state` every :attr:`power_poll_interval`;
        a host with a cheaper way (or a rate limit) overrides it."""
        deadline = time.monotonic() + timeout
        while self.power_state(vm) != PowerState.OFF:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.power_poll_interval, left))
        return True

    def wait_running(self, vm: str, timeout: float) -> VmInfo:
        """Readiness without VMware Tools: wait until ``vm`` is powered on, at most
        ``timeout`` seconds; the probes then say whether its service works.

        The default reads :meth:`power_state` every :attr:`power_poll_interval`; the
        lab also waits for its boot check, which proves the copy."""
        deadline = time.monotonic() + timeout
        while self.power_state(vm) != PowerState.ON:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutExpired(f"VM {vm} was not powered on within {timeout:.0f} s",
                                     vm=vm, timeout=timeout)
            time.sleep(min(self.power_poll_interval, left))
        return self.find_vm(vm)

    #: whether :meth:`create_snapshot_on_top` and :meth:`snapshot_deltas` work here: the
    #: ``snapshot-delta`` change tracking keeps the previous cycle's snapshot open
    keeps_snapshot_chain: bool = False

    def create_snapshot_on_top(self, vm: str, name: str, description: str = "") -> SnapshotInfo:
        """A snapshot without memory on top of vmigrate's existing ones (which it keeps),
        so the delta below is frozen; any other snapshot refuses it.  ``disk_paths``
        still names the base disk, frozen only once the older snapshots are removed."""
        raise NotImplementedError(f"host {self.name} cannot keep a snapshot chain")

    def snapshot_deltas(self, vm: str, snapshot_id: str) -> dict[int, str]:
        """Per disk key, the descriptor of the delta written after ``snapshot_id`` was
        taken (``[ds] alice/alice-000001.vmdk``): frozen once a newer snapshot exists."""
        raise NotImplementedError(f"host {self.name} cannot keep a snapshot chain")

    def changes_since(self, vm: str, since: float) -> list[VmChange] | None:
        """What was done to ``vm`` since ``since`` (epoch seconds) that its change
        tracking may have missed: reverts, extends, disk reconfigurations.

        None: this host cannot tell (the default); the engine then says so once per
        cycle and relies on the late full certify."""
        return None

    def is_runtime_file(self, name: str) -> bool:
        """Whether a file of a VM's folder (base name) is this host's runtime state:
        logs, locks, swap, change maps, snapshot deltas.  Never copied to a new VM.

        The default knows VMware's (:data:`VMWARE_RUNTIME_SUFFIXES`)."""
        return name.endswith(VMWARE_RUNTIME_SUFFIXES)

    def migration_checks(self, vm: VmInfo) -> list[HostCheck]:
        """Host-specific preconditions for moving ``vm``, checked by preflight.

        The default has none; vSphere checks what its cutover will need (every
        disk in the VM's own folder), so that a VM that cannot be moved is
        refused before anything changes, not at cutover after Alice stopped."""
        return []

    def destination_checks(self, vm: VmInfo) -> list[HostCheck]:
        """Preconditions for receiving ``vm`` on this (destination) host, checked by
        preflight: the default has none; vSphere checks the hardware version, the SSH
        service and the API user's privileges for registering and powering on."""
        return []

    def hold_placement(self, vm: str) -> dict[str, Any] | None:
        """Keep ``vm`` where it is for the migration (vSphere: its DRS automation set to
        manual by a per-VM override); returns what :meth:`release_placement` puts back
        (JSON), or None when nothing was changed (the default: nothing moves VMs)."""
        return None

    def release_placement(self, vm: str, saved: Mapping[str, Any]) -> None:
        """Undo :meth:`hold_placement` with what it returned."""

    def recheck(self, vm: VmInfo) -> list[HostCheck]:
        """What may have changed since preflight, checked before every cycle's snapshot
        (a failing line's error stops the cycle, nothing changed): vSphere checks that
        the VM still runs on this host (DRS) and its disks are still in its folder
        (a storage vMotion moves them).  The default has nothing to recheck."""
        return []

    def in_autostart(self, vm: str) -> bool | None:
        """Whether this host powers ``vm`` on when it starts (its autostart list, with
        start action power-on); None (the default) when this host cannot say."""
        return None

    def retire_plan(self, vm: str, new_name: str, note: str) -> RetirePlan | None:
        """What retiring ``vm`` (off) would change, read without changing anything:
        renamed ``new_name``, NICs not connected at power-on, out of autostart,
        ``note`` in its annotation.  None: this host cannot retire a VM (the default;
        preflight then refuses ``cutover.identity: retire-source``)."""
        return None

    def retire_vm(self, plan: RetirePlan) -> None:
        """Apply ``plan`` (idempotent: a resumed cutover runs it again)."""
        raise NotImplementedError(f"host {self.name} cannot retire a VM")

    def restore_vm(self, plan: RetirePlan) -> None:
        """Undo :meth:`retire_vm` from what ``plan`` saved (idempotent)."""
        raise NotImplementedError(f"host {self.name} cannot retire a VM")

    def prepare_config_files(
        self,
        name: str,
        source: VmInfo,
        files: Mapping[str, bytes],
        renames: Mapping[str, str],
    ) -> dict[str, bytes]:
        """Bob's configuration files, made from Alice's, to write into his folder here.

        Called on the destination host before :meth:`register_vm`, with the small
        non-disk files of Alice's folder (base name -> content; never the flat
        disks, which the sync copied) and ``renames``, each of Alice's base file
        names (those files and her flat disks) -> Bob's.  Returns Bob's base file
        name -> content.  Pure: the caller reads and writes through the data plane.

        This default renames and copies verbatim (the lab: :meth:`register_vm`
        writes the config itself); vSphere rewrites the ``.vmx`` and the disk
        descriptors to name Bob's files."""
        return {renames.get(n, n): data for n, data in files.items()}

    def take_notes(self) -> list[str]:
        """What this host changed on its own since the last call, each one line for the
        journal: vSphere notes a CD/DVD image Bob cannot reach set not to connect, a
        ``workingDir`` dropped, a power-on question it answered.  The default has none."""
        return []

    @abc.abstractmethod
    def unregister_vm(self, name: str) -> None:
        """Remove a VM from the inventory, keeping its files."""

    @abc.abstractmethod
    def wait_ready(self, vm: str, timeout: float) -> VmInfo:
        """Wait until the guest is up (tools running / boot check passed)."""

    def close(self) -> None:
        """Release sessions and agents."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
