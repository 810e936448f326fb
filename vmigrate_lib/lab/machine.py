"""A lab VM's disks and config opened together: the state snapshots act on.

The same code serves a running VM (inside its guest process, with the writer
paused by the ``stun`` lock for the short critical sections) and a VM that is
off (in a control process, under the VM's file lock), so both paths behave the
same and recover the same way after a crash.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..errors import LabError, ParameterError, SnapshotError
from . import snapshots
from .acks import AckMap, ack_path
from .ctk import ChangeTracker
from .disk import VirtualDisk, ctk_path
from .vmconfig import SNAP_REMOVING, DiskConfig, SnapshotRecord, VmConfig

Stun = AbstractContextManager[Any]
Progress = Callable[[int], None]


#: the files of a disk: flat, change map, (older labs') snapshot delta and its grain map
_DISK_FILE_SUFFIXES = ("-flat.vmdk", "-ctk.bin", "-delta.bin", "-delta.map")


class VmMachine:
    """Config + opened disks of one VM; call :meth:`close` when done."""

    def __init__(self, config_path: Path, config: VmConfig, disks: list[VirtualDisk]) -> None:
        self.config_path = config_path
        self.vmdir = config_path.parent
        self.config = config
        self.disks = disks
        #: snapshots whose interrupted removal :meth:`recover` finished
        self.finished: set[str] = set()

    @classmethod
    def open(cls, config_path: Path, on_progress: Progress | None = None) -> VmMachine:
        """Open the disks and finish whatever a crash left half done."""
        config = VmConfig.load(config_path)
        vmdir = config_path.parent
        disks: list[VirtualDisk] = []
        try:
            for d in config.disks:
                ctk: ChangeTracker | None = None
                if config.cbt_enabled:
                    path = ctk_path(vmdir, d)
                    ctk = (
                        ChangeTracker(path)
                        if path.exists()
                        else ChangeTracker.create(path, d.capacity)
                    )
                disks.append(VirtualDisk(vmdir, d, ctk))
        except BaseException:
            for disk in disks:
                disk.close()
            raise
        machine = cls(config_path, config, disks)
        try:
            machine.recover(on_progress)
        except BaseException:
            machine.close()
            raise
        return machine

    @property
    def snapshot(self) -> SnapshotRecord | None:
        return self.config.snapshots[0] if self.config.snapshots else None

    def save(self) -> None:
        self.config.save(self.config_path)

    def recover(self, on_progress: Progress | None = None) -> None:
        """Resume the deltas of live snapshots, finish a consolidation, drop leftovers."""
        snapshots.recover(self, on_progress)

    # --- snapshots (:mod:`.snapshots`) -------------------------------------------------
    def create_snapshot(
        self, name: str, description: str = "", stun: Stun | None = None,
        keep_older: bool = False,
    ) -> SnapshotRecord:
        """Freeze the current view; from now on writes land in a new top delta.  Refused
        while a snapshot exists unless ``keep_older`` (a chain, as the snapshot-delta mode
        keeps)."""
        return snapshots.create(self, name, description, stun or contextlib.nullcontext(),
                                keep_older)

    def remove_snapshot(
        self, snapshot_id: str, stun: Stun | None = None, on_progress: Progress | None = None
    ) -> float:
        """Consolidate and forget the snapshot; returns the seconds the guest was stunned."""
        snap = self.config.snapshot(snapshot_id)
        if snap is None and snapshot_id in self.finished:
            return 0.0  # its removal was interrupted and opening the VM just finished it
        if snap is None:
            raise SnapshotError(
                f"VM {self.config.name} has no snapshot {snapshot_id}",
                vm=self.config.name,
                snapshot_id=snapshot_id,
            )
        if snap.state != SNAP_REMOVING:
            snap.state = SNAP_REMOVING
            self.save()
        return snapshots.remove(self, snap, stun or contextlib.nullcontext(), on_progress)

    # --- disks (geometry) --------------------------------------------------------------
    def _no_snapshot(self, what: str) -> None:
        if self.config.snapshots:
            raise SnapshotError(
                f"cannot {what} of VM {self.config.name} while it has snapshot "
                f"{self.config.snapshots[0].name!r} (VMware refuses it too)",
                vm=self.config.name, hint="remove the snapshot first",
            )

    def _check_size(self, capacity: int) -> None:
        bs = self.config.workload.block_size
        if capacity <= 0 or capacity % bs:
            raise ParameterError(
                f"disk size {capacity} must be a positive multiple of the block size {bs}",
                capacity=capacity,
            )

    def resize_disk(self, key: int, capacity: int, stun: Stun | None = None) -> DiskConfig:
        """Grow one disk (never shrink); CBT of that disk restarts in a new epoch.

        Order for crashes: flat file, then change map, then the config (the
        commit).  A crash before the config is saved leaves a longer sparse
        file and a fresh map, both harmless, and the resize can be repeated.
        """
        disk = next((d for d in self.disks if d.key == key), None)
        if disk is None:
            raise LabError(f"VM {self.config.name} has no disk with key {key}",
                           vm=self.config.name, disk_key=key)
        old = disk.capacity
        if capacity < old:
            raise ParameterError(
                f"cannot shrink disk {key} of VM {self.config.name} from {old} to {capacity} "
                "bytes: virtual disks only grow",
                vm=self.config.name, disk_key=key, capacity=old, requested=capacity,
            )
        self._check_size(capacity)
        if capacity == old:
            return disk.cfg
        self._no_snapshot(f"resize disk {key}")
        with stun or contextlib.nullcontext():
            disk.grow(capacity)
            if disk.ctk is None:  # tracking off: a stale map must not be reused when enabled
                ctk_path(self.vmdir, disk.cfg).unlink(missing_ok=True)
            self.save()
        return disk.cfg

    def add_disk(self, capacity: int, stun: Stun | None = None) -> VirtualDisk:
        """Hot-add a new empty (sparse) disk with the next free key and a new file name.

        The name is one no file in the folder uses (a removed disk's files stay
        and are never reused); the key may be a removed disk's (as VMware reuses
        device keys), so its ack map starts empty here, not from the old disk's.
        """
        self._check_size(capacity)
        self._no_snapshot("add a disk")
        keys = [d.key for d in self.config.disks]
        key = max(keys, default=1999) + 1
        files = {d.file for d in self.config.disks}
        stems = {n[: -len(suf)] for n in os.listdir(self.vmdir)
                 for suf in _DISK_FILE_SUFFIXES if n.endswith(suf)}
        i = len(self.config.disks)
        while f"{self.config.name}_{i}" in stems or f"{self.config.name}_{i}-flat.vmdk" in files:
            i += 1
        file = f"{self.config.name}_{i}-flat.vmdk"
        cfg = DiskConfig(key, f"Hard disk {len(keys) + 1}", file, capacity)
        with stun or contextlib.nullcontext():
            with open(self.vmdir / file, "xb") as fh:  # never an existing file
                fh.truncate(capacity)
                fh.flush()
                os.fsync(fh.fileno())
            AckMap(key, self.config.workload.block_size, clean=True).save(
                ack_path(self.vmdir, key))
            ctk = ChangeTracker.replace(ctk_path(self.vmdir, cfg), capacity) \
                if self.config.cbt_enabled else None
            disk = VirtualDisk(self.vmdir, cfg, ctk)
            self.disks.append(disk)
            self.config.disks.append(cfg)
            self.save()
        return disk

    def remove_disk(self, key: int, stun: Stun | None = None) -> int:
        """Detach a disk from the VM (its files stay, as "remove from virtual machine");
        returns the index it had in :attr:`disks`."""
        index = next((i for i, d in enumerate(self.disks) if d.key == key), None)
        if index is None:
            raise LabError(f"VM {self.config.name} has no disk with key {key}",
                           vm=self.config.name, disk_key=key)
        if len(self.disks) == 1:
            raise ParameterError(f"disk {key} is the last disk of VM {self.config.name}")
        self._no_snapshot(f"remove disk {key}")
        with stun or contextlib.nullcontext():
            disk = self.disks.pop(index)
            self.config.disks = [d for d in self.config.disks if d.key != key]
            self.save()
            disk.close()
        return index

    # --- change tracking -------------------------------------------------------------
    def enable_change_tracking(self) -> None:
        """Turn CBT on in a new epoch (an existing map would be stale after being off)."""
        for d in self.disks:
            if d.ctk is not None:
                d.ctk.reset()
            else:
                path = ctk_path(self.vmdir, d.cfg)
                d.ctk = (
                    ChangeTracker(path) if path.exists() else ChangeTracker.create(path, d.capacity)
                )
                d.ctk.reset()
        self.config.cbt_enabled = True
        self.save()

    def reset_change_tracking(self) -> None:
        if not self.config.cbt_enabled:
            raise LabError(f"change tracking is off on {self.config.name}", vm=self.config.name)
        for d in self.disks:
            if d.ctk is not None:
                d.ctk.reset()

    def fsync(self) -> None:
        for d in self.disks:
            d.fsync()

    def close(self) -> None:
        for d in self.disks:
            with contextlib.suppress(OSError):
                d.fsync()
            d.close()
