"""Snapshots: a frozen base for the data plane to read while the guest runs on.

vmigrate's own snapshots are named ``vmigrate-...``; any other snapshot belongs
to someone else and is reported, never touched.  While any snapshot exists the
base disk is no longer a single flat file of the VM's present, so a new one is
taken only on a VM without snapshots.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from ...errors import SnapshotError, StraySnapshots
from ..host import SnapshotInfo
from .connection import Connection
from .inventory import disk_details
from .paths import flat_path, is_delta, parse_ds_path
from .tasks import wait_task

CREATE_TIMEOUT = 600.0


def walk(tree: list[Any] | None) -> Iterator[Any]:
    """Every node of a snapshot tree, parents first."""
    for node in tree or []:
        yield node
        yield from walk(node.childSnapshotList)


def snapshot_info(node: Any, snap: Any | None = None) -> SnapshotInfo:
    """A tree node (or a snapshot object) as the engine sees it: change ids and frozen files."""
    ref = snap if snap is not None else node.snapshot
    change_ids: dict[int, str] = {}
    disk_paths: dict[int, str] = {}
    for d in disk_details(ref.config):
        if d.change_id:
            change_ids[d.key] = d.change_id
        _, path = parse_ds_path(d.descriptor)
        if not is_delta(path):  # a delta (snapshot on snapshot) is not flat-readable
            disk_paths[d.key] = flat_path(path)
    return SnapshotInfo(
        id=str(ref._moId),
        name=str(node.name),
        created=node.createTime.timestamp(),
        change_ids=change_ids,
        disk_paths=disk_paths,
        description=str(node.description or ""),
    )


def snapshot_nodes(conn: Connection, vm: Any) -> list[Any]:
    return conn.call(
        lambda: list(walk(vm.snapshot.rootSnapshotList)) if vm.snapshot is not None else [],
        f"listing snapshots of {vm.name}",
    )


def list_snapshots(conn: Connection, vm: Any) -> list[SnapshotInfo]:
    nodes = snapshot_nodes(conn, vm)
    return conn.call(lambda: [snapshot_info(n) for n in nodes], f"reading snapshots of {vm.name}")


def find_snapshot(conn: Connection, vm: Any, snapshot_id: str) -> Any | None:
    """The snapshot object with this id (moref), or None if it is gone."""
    for n in snapshot_nodes(conn, vm):
        if n.snapshot._moId == snapshot_id:
            return n.snapshot
    return None


def require_no_snapshots(conn: Connection, vm: Any, prefix: str) -> None:
    """Refuse (changing nothing) when any snapshot exists; name others' snapshots."""
    snaps = list_snapshots(conn, vm)
    foreign = [s.name for s in snaps if not s.name.startswith(prefix)]
    if foreign:
        raise StraySnapshots(
            f"VM {vm.name} has snapshots vmigrate did not make: {', '.join(foreign)}",
            vm=vm.name,
            snapshots=foreign,
        )
    if snaps:
        raise SnapshotError(
            f"VM {vm.name} still has vmigrate snapshot(s) {', '.join(s.name for s in snaps)}",
            hint="remove them first (a re-run of the sync cycle does it)",
            vm=vm.name,
            snapshots=[s.name for s in snaps],
        )


def create(
    conn: Connection, vm: Any, name: str, description: str, quiesce: bool, timeout: float
) -> SnapshotInfo:
    """A snapshot without memory; returns its change ids and the frozen base files."""
    what = f"snapshot {name} of VM {vm.name}"
    task = conn.call(
        lambda: vm.CreateSnapshot_Task(
            name=name, description=description, memory=False, quiesce=quiesce
        ),
        what,
    )
    snap = conn.call(lambda: wait_task(task, timeout, what, vm=vm.name), what)
    if snap is None:
        raise SnapshotError(f"{what} returned no snapshot", vm=vm.name)
    for n in snapshot_nodes(conn, vm):
        if n.snapshot == snap:
            return conn.call(functools.partial(snapshot_info, n, snap), what)
    raise SnapshotError(f"{what} is not in the VM's snapshot tree", vm=vm.name)


def remove(conn: Connection, vm: Any, snapshot_id: str, timeout: float) -> bool:
    """Remove one snapshot and wait for disk consolidation; False if it was already gone."""
    snap = find_snapshot(conn, vm, snapshot_id)
    if snap is None:
        return False
    what = f"removing snapshot {snapshot_id} of VM {vm.name}"
    task = conn.call(lambda: snap.RemoveSnapshot_Task(removeChildren=False, consolidate=True), what)
    conn.call(lambda: wait_task(task, timeout, what, vm=vm.name, snapshot=snapshot_id), what)
    if conn.call(lambda: bool(vm.runtime.consolidationNeeded), what):
        what = f"consolidating the disks of VM {vm.name}"
        task = conn.call(lambda: vm.ConsolidateVMDisks_Task(), what)
        conn.call(lambda: wait_task(task, timeout, what, vm=vm.name), what)
        if conn.call(lambda: bool(vm.runtime.consolidationNeeded), what):
            raise SnapshotError(
                f"VM {vm.name} still needs disk consolidation after removing {snapshot_id}",
                hint="run 'Consolidate' on the VM (vSphere client) and check the datastore's space",
                vm=vm.name,
            )
    return True


__all__ = [
    "CREATE_TIMEOUT",
    "create",
    "find_snapshot",
    "list_snapshots",
    "remove",
    "require_no_snapshots",
    "snapshot_info",
    "snapshot_nodes",
    "walk",
]
