"""Answering "what changed on this disk between change id P and snapshot S".

Runs in any control process, read-only: while the snapshot exists, both the
base file and the CBT map are frozen, so no lock or guest round trip is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ChangeIdInvalid, SnapshotError
from ..extents import Extent
from .ctk import ChangeTracker
from .disk import allocated_extents, ctk_path
from .vmconfig import VmConfig

#: ``since`` value asking for the allocated areas (VMware's ``"*"``).
ALL_ALLOCATED = "*"


def changed_areas(
    vmdir: Path, cfg: VmConfig, snapshot_id: str, disk_key: int, since: str
) -> list[Extent]:
    """Sorted, merged, 64 KiB-aligned extents; :class:`ChangeIdInvalid` if ``since`` is unusable."""
    rec = cfg.snapshot(snapshot_id)
    if rec is None:
        raise SnapshotError(
            f"VM {cfg.name} has no snapshot {snapshot_id}", vm=cfg.name, snapshot_id=snapshot_id
        )
    disk = cfg.disk(disk_key)
    if since == ALL_ALLOCATED:
        fd = os.open(vmdir / disk.file, os.O_RDONLY)
        try:
            return allocated_extents(fd, disk.capacity)
        finally:
            os.close(fd)
    snap_cid = rec.change_ids.get(disk_key)
    if not cfg.cbt_enabled or snap_cid is None:
        raise ChangeIdInvalid(
            f"change tracking was off on {cfg.name} when snapshot {rec.name} was taken",
            vm=cfg.name,
            disk_key=disk_key,
            change_id=since,
        )
    ctk = ChangeTracker(ctk_path(vmdir, disk), writable=False)
    try:
        return ctk.changed(snap_cid, since, disk.capacity)
    finally:
        ctk.close()
