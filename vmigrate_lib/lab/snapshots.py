"""A lab VM's snapshots: create on top of the chain, remove by consolidating, recover.

Snapshot ``N``'s delta holds the writes made after it was taken and until the
next snapshot (or now); removing snapshot ``N`` merges that delta into its parent
(the flat file, or the delta below), as VMware deletes a snapshot.  Without
``keep_older`` a VM has at most one snapshot (what the sync cycles rely on: the
flat file is then the frozen point); with it a new snapshot goes on top of the
older ones (the snapshot-delta mode keeps the previous cycle's snapshot open, and
its delta, frozen by the new one, is exactly the writes in between).

Change tracking: while snapshots exist the CBT map is not updated by writes; a
delta's grains are marked with the generation they were written in when a newer
snapshot freezes that delta, or when the top snapshot is removed, so a query
between any two snapshots stays exact.  Every step is idempotent: a crash leaves
the snapshot in state ``removing`` with its delta intact and the next open ends it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..errors import SnapshotError
from .vmconfig import SNAP_REMOVING, SnapshotRecord

if TYPE_CHECKING:
    from .machine import VmMachine

Stun = AbstractContextManager[Any]
Progress = Callable[[int], None]

#: VMware's limit on a chain of snapshots (and so the lab's)
MAX_CHAIN = 32


def snapshot_number(snap: SnapshotRecord) -> int:
    """``snapshot-7`` -> 7: the number in the snapshot's delta file names (``-000007``)."""
    return int(snap.id.rpartition("-")[2])


def recover(m: VmMachine, on_progress: Progress | None = None) -> None:
    """Reopen the chain of the live snapshots, finish removals, drop leftovers."""
    numbers = [snapshot_number(s) for s in m.config.snapshots]
    for d in m.disks:
        if not numbers:
            if d.has_delta_files():  # create never finished, or removal did
                d.drop_delta()
            continue
        for n in numbers:
            d.open_delta(n)
        d.chain.prune(numbers)
    for snap in [s for s in m.config.snapshots if s.state == SNAP_REMOVING]:
        remove(m, snap, contextlib.nullcontext(), on_progress)
        m.finished.add(snap.id)


def create(m: VmMachine, name: str, description: str, stun: Stun,
           keep_older: bool) -> SnapshotRecord:
    """Freeze the current view; from now on writes land in the new top delta."""
    cfg = m.config
    if cfg.snapshots and not keep_older:
        raise SnapshotError(
            f"VM {cfg.name} already has snapshot {cfg.snapshots[0].name!r}; "
            "the lab keeps one snapshot per VM unless asked to keep the older ones",
            vm=cfg.name, existing=[s.name for s in cfg.snapshots])
    if len(cfg.snapshots) >= MAX_CHAIN:
        raise SnapshotError(f"VM {cfg.name} has {MAX_CHAIN} snapshots, VMware's limit",
                            vm=cfg.name, existing=[s.name for s in cfg.snapshots])
    number = cfg.snapshot_counter + 1
    live = [snapshot_number(s) for s in cfg.snapshots]
    with stun:
        try:
            for d in m.disks:
                if d.ctk is not None and d.chain.layers:  # the frozen delta's writes
                    d.ctk.mark_grains(sorted(d.delta_grains))
                d.chain.prune(live)
                d.open_delta(number)
            change_ids = {d.key: d.ctk.advance() for d in m.disks if d.ctk is not None}
            cfg.snapshot_counter = number
            rec = SnapshotRecord(id=f"snapshot-{number}", name=name, created=time.time(),
                                 description=description, change_ids=change_ids)
            cfg.snapshots.append(rec)
            m.save()
            for d in m.disks:
                if d.ctk is not None:
                    d.ctk.flush()
        except OSError as exc:
            cfg.snapshots = [s for s in cfg.snapshots if snapshot_number(s) != number]
            for d in m.disks:
                top = d.chain.top
                if top is not None and top.number == number:
                    d.chain.drop(len(d.chain.layers) - 1)
            raise SnapshotError(f"snapshot of {cfg.name} failed: {exc}") from exc
    return rec


def remove(m: VmMachine, snap: SnapshotRecord, stun: Stun, on_progress: Progress | None) -> float:
    """Merge the snapshot's delta into its parent and forget it; returns the stun seconds."""
    index = next(i for i, s in enumerate(m.config.snapshots) if s.id == snap.id)
    if index == len(m.config.snapshots) - 1:
        return _consolidate_top(m, snap, stun, on_progress)
    for d in m.disks:  # nobody writes this delta any more: no stun for the copy
        d.chain.merge(index)
        d.fsync()
    t0 = time.monotonic()
    with stun:
        for d in m.disks:
            d.chain.reparent_above(index)
        m.config.snapshots = [s for s in m.config.snapshots if s.id != snap.id]
        m.save()
        for d in m.disks:
            d.chain.drop(index)
        return time.monotonic() - t0


def _consolidate_top(m: VmMachine, snap: SnapshotRecord, stun: Stun,
                     on_progress: Progress | None) -> float:
    """The delta the guest writes, into its parent: a pass the guest runs through, then
    a short stun for the grains it wrote meanwhile."""
    with stun:
        plan = {d.key: sorted(d.delta_grains) for d in m.disks}
        for d in m.disks:
            d.redirty = set()
    copied = 0
    for d in m.disks:
        for g in plan[d.key]:
            d.copy_back([g])
            copied += 1
            if on_progress is not None:
                on_progress(copied)
    t0 = time.monotonic()
    with stun:
        for d in m.disks:
            late = (d.redirty or set()) | (d.delta_grains - set(plan[d.key]))
            d.copy_back(late)
            if d.ctk is not None:
                d.ctk.mark_grains(sorted(d.delta_grains))
            d.fsync()
        m.config.snapshots = [s for s in m.config.snapshots if s.id != snap.id]
        m.save()
        for d in m.disks:
            d.chain.drop(len(d.chain.layers) - 1)
            d.redirty = None
        return time.monotonic() - t0
