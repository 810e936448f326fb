"""Changed block tracking: enable it (with the stun it needs) and ask what changed.

QueryChangedDiskAreas answers one window of the disk per call; it is paged by
``startOffset`` until the disk's end.  A change id is an epoch plus a sequence
(``"52 de ... 7c/4711"``): an id from another epoch (tracking reset, disk
moved or resized) proves nothing, so it is refused as :class:`ChangeIdInvalid`
before the host is even asked.
"""

from __future__ import annotations

import functools
from typing import Any

from ...errors import ChangeIdInvalid, HostApiError, SnapshotError
from ...extents import Extent
from ..host import ALL_ALLOCATED, SnapshotInfo
from ._vmomi import vim, vmodl
from .connection import Connection
from .inventory import disk_details
from .tasks import wait_task

RECONFIGURE_TIMEOUT = 300.0


def split_change_id(change_id: str) -> tuple[str, int] | None:
    """``"epoch/seq"`` -> (epoch, seq); None when the id has another shape."""
    epoch, sep, seq = change_id.rpartition("/")
    if not sep or not epoch or not seq.isdigit():
        return None
    return epoch, int(seq)


def check_epoch(snapshot_cid: str | None, since: str, vm: str, disk_key: int) -> None:
    """Refuse ``since`` unless it can be a base of the snapshot's change id."""
    if since == ALL_ALLOCATED:
        return
    if not snapshot_cid:
        raise ChangeIdInvalid(
            f"disk {disk_key} of {vm} has no change id in the snapshot: "
            "change tracking was off when it was taken",
            vm=vm,
            disk_key=disk_key,
            change_id=since,
        )
    snap, base = split_change_id(snapshot_cid), split_change_id(since)
    if snap is None or base is None:
        return  # not VMware's usual shape: the host decides
    if snap[0] != base[0]:
        raise ChangeIdInvalid(
            f"change id {since} of disk {disk_key} is from another tracking epoch than the "
            f"snapshot's {snapshot_cid} (change tracking was reset)",
            vm=vm,
            disk_key=disk_key,
            change_id=since,
            snapshot_change_id=snapshot_cid,
        )
    if base[1] > snap[1]:
        raise ChangeIdInvalid(
            f"change id {since} of disk {disk_key} is newer than the snapshot's {snapshot_cid}",
            vm=vm,
            disk_key=disk_key,
            change_id=since,
            snapshot_change_id=snapshot_cid,
        )


def query_changed(
    conn: Connection, vm: Any, snap_ref: Any, snapshot: SnapshotInfo, disk_key: int, since: str
) -> list[Extent]:
    """Every changed (or, for ``"*"``, allocated) extent of one disk, sorted."""
    name = str(vm.name)
    details = {d.key: d for d in conn.call(lambda: disk_details(snap_ref.config), "reading a snapshot")}
    disk = details.get(disk_key)
    if disk is None:
        raise SnapshotError(
            f"snapshot {snapshot.name} of {name} has no disk with key {disk_key}",
            vm=name,
            disk_key=disk_key,
        )
    check_epoch(snapshot.change_ids.get(disk_key) or disk.change_id, since, name, disk_key)
    what = f"QueryChangedDiskAreas of disk {disk_key} of {name} since {since}"
    out: list[Extent] = []
    offset, end = 0, disk.capacity
    while offset < end:
        try:
            info = conn.call(
                functools.partial(
                    vm.QueryChangedDiskAreas,
                    snapshot=snap_ref, deviceKey=disk_key, startOffset=offset, changeId=since,
                ),
                what,
            )
        except HostApiError as exc:
            fault = exc.__cause__
            if isinstance(fault, vim.fault.FileFault) or (
                isinstance(fault, vmodl.fault.InvalidArgument)
                and getattr(fault, "invalidProperty", None) == "changeId"
            ):
                raise ChangeIdInvalid(
                    f"the host refused change id {since} for disk {disk_key} of {name}: {exc.message}",
                    vm=name,
                    disk_key=disk_key,
                    change_id=since,
                ) from fault
            raise
        start, length = int(info.startOffset), int(info.length)
        if start != offset or length <= 0:
            raise HostApiError(
                f"{what}: the host answered offset {start} length {length} for offset {offset}",
                hint="the host's change tracking misbehaves; vmigrate falls back to hash-compare "
                "with change_tracking: hash",
                vm=name,
                disk_key=disk_key,
            )
        for area in info.changedArea or []:
            a_start = max(int(area.start), 0)
            a_end = min(int(area.start) + int(area.length), end)
            if a_end > a_start:
                out.append(Extent(a_start, a_end - a_start))
        offset = start + length
    out.sort()
    return out


def enable(conn: Connection, vm: Any, timeout: float = RECONFIGURE_TIMEOUT) -> bool:
    """Turn CBT on; True if it was off.  A running VM needs a stun to start tracking:
    the caller takes it (a snapshot create/remove) after this returns."""
    if conn.call(lambda: bool(vm.config.changeTrackingEnabled), f"reading VM {vm.name}"):
        return False
    what = f"enabling change tracking on VM {vm.name}"
    spec = vim.vm.ConfigSpec(changeTrackingEnabled=True)
    task = conn.call(lambda: vm.ReconfigVM_Task(spec=spec), what)
    conn.call(lambda: wait_task(task, timeout, what, vm=vm.name), what)
    return True


__all__ = ["check_epoch", "enable", "query_changed", "split_change_id"]
