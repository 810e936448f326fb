"""Snapshots: a frozen base for the data plane to read while the guest runs on.

vmigrate's own snapshots are named ``vmigrate-...``; any other snapshot belongs
to someone else and is reported, never touched.  While any snapshot exists the
base disk is no longer a single flat file of the VM's present, so a new one is
taken only on a VM without snapshots, and only when no disk already runs on a
delta (a failed consolidation leaves the VM on ``disk-000001.vmdk`` with an
empty snapshot tree): the frozen file must be a flat base, told by
``backing.parent``, or the cycle refuses rather than read a stale base.

Removal under write load consolidates for a long time, and a removal that
outlived its timeout keeps running on the host: the next run waits for the
VM's running tasks (``vm.recentTask``) instead of failing with "Another task is
already in progress".
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from ...errors import DiskChainError, SnapshotError, StraySnapshots, TimeoutExpired, VmigrateError
from ..dspaths import flat_path, parse_ds_path
from ..host import SnapshotInfo
from ._vmomi import vim
from .connection import Connection
from .inventory import DiskDetail, disk_details
from .tasks import wait_task

CREATE_TIMEOUT = 600.0
#: Removing a snapshot consolidates its delta into the base; under heavy writes that takes
#: far longer than the 10 minutes it once had here (Forklift moved to 120 minutes).
REMOVE_TIMEOUT = 7200.0


def walk(tree: list[Any] | None) -> Iterator[Any]:
    """Every node of a snapshot tree, parents first."""
    for node in tree or []:
        yield node
        yield from walk(node.childSnapshotList)


def snapshot_info(node: Any, snap: Any | None = None, *, strict_vm: str = "") -> SnapshotInfo:
    """A tree node (or a snapshot object) as the engine sees it: change ids and frozen files.

    A disk whose frozen file is itself a delta (its backing has a parent) has no
    flat file to read; ``strict_vm`` (a snapshot the cycle will read) refuses it
    rather than let anybody fall back to the stale base."""
    ref = snap if snap is not None else node.snapshot
    change_ids: dict[int, str] = {}
    disk_paths: dict[int, str] = {}
    deltas: list[DiskDetail] = []
    for d in disk_details(ref.config):
        if d.change_id:
            change_ids[d.key] = d.change_id
        if d.is_delta:
            deltas.append(d)
            continue
        _, path = parse_ds_path(d.descriptor)
        disk_paths[d.key] = flat_path(path)
    if strict_vm and deltas:
        raise chain_error(strict_vm, deltas, f"snapshot {node.name} froze")
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


def chain_error(vm: str, deltas: list[DiskDetail], how: str = "runs on") -> DiskChainError:
    files = ", ".join(f"{d.label} {d.descriptor} (parent {d.parent})" for d in deltas)
    return DiskChainError(
        f"VM {vm}: {how} delta disk(s), so the flat base file is stale: {files}",
        vm=vm, disks=[d.descriptor for d in deltas],
    )


def chain_problems(conn: Connection, vm: Any) -> tuple[bool, list[DiskDetail]]:
    """(``runtime.consolidationNeeded``, disks on a delta although the VM has no snapshot).

    Both mean the VM runs on a chain nobody owns (a failed or interrupted
    consolidation): the base file lacks the newest writes."""

    def run() -> tuple[bool, list[DiskDetail]]:
        needed = bool(vm.runtime.consolidationNeeded)
        has_snapshots = vm.snapshot is not None and bool(vm.snapshot.rootSnapshotList)
        deltas = [] if has_snapshots else [d for d in disk_details(vm.config) if d.is_delta]
        return needed, deltas

    return conn.call(run, "reading the disk chain of a VM")


def require_flat(conn: Connection, vm: Any, name: str, consolidate_first: bool,
                 timeout: float) -> bool:
    """Refuse (changing nothing) a VM that runs on a delta, or consolidate it when the
    operator allowed that; True when a consolidation ran."""
    needed, deltas = chain_problems(conn, vm)
    if not needed and not deltas:
        return False
    if not consolidate_first:
        if deltas:
            raise chain_error(name, deltas)
        raise DiskChainError(
            f"VM {name} needs disk consolidation (runtime.consolidationNeeded): its disks "
            f"may run on a delta the snapshot tree no longer shows", vm=name)
    consolidate(conn, vm, name, timeout)
    needed, deltas = chain_problems(conn, vm)
    if needed or deltas:
        raise SnapshotError(
            f"VM {name} still runs on a delta after ConsolidateVMDisks_Task",
            hint="consolidate in the vSphere Client and check the datastore's free space",
            vm=name)
    return True


def consolidate(conn: Connection, vm: Any, name: str, timeout: float) -> None:
    what = f"consolidating the disks of VM {name}"
    wait_running(conn, vm, name, timeout)
    task = conn.call(lambda: vm.ConsolidateVMDisks_Task(), what)
    wait_removal(conn, task, timeout, what, name)


def running_tasks(conn: Connection, vm: Any) -> list[Any]:
    """The VM's queued or running tasks (``ManagedEntity.recentTask``)."""
    busy = (vim.TaskInfo.State.queued, vim.TaskInfo.State.running)
    return conn.call(lambda: [t for t in (vm.recentTask or []) if t.info.state in busy],
                     "reading the running tasks of a VM")


def wait_running(conn: Connection, vm: Any, name: str, timeout: float) -> int:
    """Wait for the VM's running tasks (a removal an earlier run left running on the
    host, someone's consolidation); how many there were.  Their failure is theirs:
    the caller looks at the VM afterwards."""
    tasks = running_tasks(conn, vm)
    for task in tasks:
        what = f"waiting for task {task._moId} already running on VM {name}"
        try:
            conn.call(functools.partial(wait_task, task, timeout, what, vm=name), what)
        except TimeoutExpired:
            raise
        except VmigrateError:
            pass
    return len(tasks)


def wait_removal(conn: Connection, task: Any, timeout: float, what: str, name: str,
                 **fields: Any) -> None:
    """A removal or consolidation that outlives ``timeout`` goes on on the host: say that
    the next run waits for it (and how to give it longer)."""
    try:
        conn.call(lambda: wait_task(task, timeout, what, vm=name, **fields), what)
    except TimeoutExpired as exc:
        raise TimeoutExpired(
            f"{exc.message}; it goes on on the host and the next run waits for it",
            hint="re-run later (or raise source.snapshot_remove_timeout); writes during a long "
            "consolidation slow it down",
            **exc.fields,
        ) from exc


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
            try:
                return conn.call(functools.partial(snapshot_info, n, snap, strict_vm=str(vm.name)), what)
            except DiskChainError:
                try:  # ours, just made, unusable: leave nothing behind
                    conn.call(lambda: snap.RemoveSnapshot_Task(removeChildren=False,
                                                               consolidate=True), what)
                except VmigrateError:
                    pass  # the next run removes it by its name
                raise
    raise SnapshotError(f"{what} is not in the VM's snapshot tree", vm=vm.name)


def remove(conn: Connection, vm: Any, snapshot_id: str, timeout: float) -> bool:
    """Remove one snapshot and wait for disk consolidation; False if it was already gone.

    A removal still running from an earlier run is waited for first (and is
    then usually the one that removed it)."""
    name = conn.call(lambda: str(vm.name), "reading a VM's name")
    wait_running(conn, vm, name, timeout)
    snap = find_snapshot(conn, vm, snapshot_id)
    if snap is None:
        return False
    what = f"removing snapshot {snapshot_id} of VM {name}"
    task = conn.call(lambda: snap.RemoveSnapshot_Task(removeChildren=False, consolidate=True), what)
    wait_removal(conn, task, timeout, what, name, snapshot=snapshot_id)
    if conn.call(lambda: bool(vm.runtime.consolidationNeeded), what):
        consolidate(conn, vm, name, timeout)
        if conn.call(lambda: bool(vm.runtime.consolidationNeeded), what):
            raise SnapshotError(
                f"VM {vm.name} still needs disk consolidation after removing {snapshot_id}",
                hint="run 'Consolidate' on the VM (vSphere client) and check the datastore's space",
                vm=vm.name,
            )
    return True


__all__ = [
    "CREATE_TIMEOUT",
    "REMOVE_TIMEOUT",
    "chain_error",
    "chain_problems",
    "consolidate",
    "create",
    "find_snapshot",
    "list_snapshots",
    "remove",
    "require_flat",
    "require_no_snapshots",
    "running_tasks",
    "snapshot_info",
    "snapshot_nodes",
    "wait_removal",
    "wait_running",
    "walk",
]
