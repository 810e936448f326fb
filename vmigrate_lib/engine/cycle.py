"""One sync cycle: snapshot, find what changed, copy it, certify, remove the snapshot.

What to copy per disk (and the resume rule) is :mod:`.changeset`; certify is
:mod:`.certify`.  The cycle commits the new change ids only after both
succeeded, and removes its snapshot whatever happens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..control.host import VMIGRATE_SNAPSHOT_PREFIX, DiskInfo, SnapshotInfo, VmInfo
from ..dataplane.datastore import Peeked
from ..errors import (
    Interrupted,
    OperationError,
    SnapshotError,
    VmigrateError,
)
from ..extents import total
from . import snapdelta
from .certify import certify_disks
from .changeset import DiskPlan, cbt_doubt, clean_stale, plan_disk
from .compare import CompareResult
from .context import Migration
from .destination import prepare_destination
from .progress import CycleEnded, CycleFailed, CycleStarted, PhaseReached
from .state import DiskState, InProgress
from .transfer import copy_disks


@dataclass
class CycleOutcome:
    record: dict[str, Any]
    certify: dict[int, CompareResult] = field(default_factory=dict)


def run_cycle(
    m: Migration, kind: str = "delta", *, certify: str | None = None, repair: bool = False
) -> CycleOutcome:
    """Run one cycle and record it; the snapshot is removed whatever happens.

    The steps: open the record (:func:`_new_record`), take the snapshot after cleaning
    up a killed run's (:func:`_take_snapshot`), plan each disk (:mod:`.changeset`), copy
    (:func:`_copy`), certify (:mod:`.certify`), commit the new change ids; then, whatever
    happened, remove the snapshot and journal the record (``cycle`` or ``cycle_failed``).
    ``kind`` is ``delta`` or ``final`` (a first cycle is always ``seed``); ``certify``
    overrides ``sync.certify``; ``repair`` lets certify rewrite differing blocks.
    """
    rec = _new_record(m, kind, certify)
    resume, disks, snap = _take_snapshot(m, rec)
    phases: dict[str, float] = rec["phases"]
    failed: BaseException | None = None
    try:
        _same_disks(m, disks)
        t = time.monotonic()
        doubt = cbt_doubt(m, rec)
        plans = [plan_disk(m, snap, d, resume, doubt) for d in disks]
        snapdelta.release_older(m, snap)  # snapshot-delta: the base is now frozen at snap
        phases["query"] = time.monotonic() - t
        _copy(m, snap, plans, rec)
        t = time.monotonic()
        results = certify_disks(m, snap, plans, rec["certify_mode"], repair, rec)
        phases["certify"] = time.monotonic() - t
        _commit(m, snap, disks, rec)
        return CycleOutcome(rec, results)
    except KeyboardInterrupt as exc:
        failed = exc
        raise Interrupted(f"cycle {rec['number']} interrupted", cycle=rec["number"]) from exc
    except BaseException as exc:
        failed = exc
        raise
    finally:
        t = time.monotonic()
        if not snapdelta.keep(m, snap, rec["kind"], failed):
            _remove_snapshot(m, snap, failed)
        phases["cleanup"] = time.monotonic() - t
        _finish_record(m, rec, failed)


def _new_record(m: Migration, kind: str, certify: str | None) -> dict[str, Any]:
    """The cycle's journal record, filled as it runs (a first cycle is a seed, certified
    in full)."""
    state = m.workspace.state  # raises WorkspaceMismatch when no migration claimed it
    if not state.seeded:
        kind = "seed"
    number = state.cycles + 1
    m.reporter.event(CycleStarted(number=number, kind=kind))
    return {
        "number": number, "kind": kind, "started": time.time(), "phases": {}, "disks": [],
        "certify_mode": "full" if kind == "seed" else (certify or m.params.sync.certify),
        "resumed": False,
    }


def _recheck(m: Migration, vm: VmInfo) -> None:
    """What may have changed since preflight (:meth:`Host.recheck`: DRS moved the VM, a
    disk was reconfigured, a storage vMotion moved its files): the first failing line
    stops the cycle before its snapshot, nothing changed."""
    for c in m.source.recheck(vm):
        if not c.ok and c.error is not None:
            raise c.error


def _take_snapshot(
    m: Migration, rec: dict[str, Any]
) -> tuple[InProgress | None, list[DiskInfo], SnapshotInfo]:
    """Clean up a killed run's leftovers (its checkpoints are the resume point), prepare
    Bob's folder, then freeze Alice's disks; the snapshot is recorded before anything
    else can fail, so a crash leaves it findable."""
    ws, state = m.workspace, m.workspace.state
    t = time.monotonic()
    resume = clean_stale(m)
    rec["resumed"] = resume is not None
    vm = m.vm()
    _recheck(m, vm)
    m.open_streams_ahead(vm.disks)  # their agents start during the snapshot, not the copy
    prepare_destination(m, vm)
    snap_name = f"{VMIGRATE_SNAPSHOT_PREFIX}{state.migration_id}-c{rec['number']}"
    snap = snapdelta.take_snapshot(m, vm.name, snap_name)
    rec["snapshot_at"] = time.time()
    prev = state.last_snapshot_at
    rec["interval"] = rec["snapshot_at"] - prev if prev else None
    state.begin_cycle(InProgress(
        number=rec["number"], kind=rec["kind"], snapshot_id=snap.id, snapshot_name=snap.name,
        snap_change_ids={str(k): v for k, v in snap.change_ids.items()},
        started=rec["started"],
    ))
    ws.save()
    took = rec["phases"]["snapshot"] = time.monotonic() - t
    m.reporter.event(PhaseReached(phase="snapshot", detail=f"{snap.name} in {took:.2f} s"))
    return resume, list(vm.disks), snap


def _copy(m: Migration, snap: SnapshotInfo, plans: list[DiskPlan], rec: dict[str, Any]) -> None:
    """Copy (or hash-compare) every disk; one line per disk in the record, and the copy
    and hash times apart."""
    t = time.monotonic()
    hash_seconds = 0.0
    for r in copy_disks(m, snap, plans):
        hash_seconds += r.hash_seconds
        rec["disks"].append({
            "key": r.plan.disk.key, "mode": r.plan.mode, "reason": r.plan.reason,
            "bytes_changed": total(r.plan.extents), "extents": len(r.plan.extents),
            "bytes_read": r.stats.bytes_read, "bytes_sent": r.stats.bytes_sent,
            "bytes_zero": r.stats.bytes_zero, "resumed_from": r.plan.resumed_from,
            "codec": r.stats.codec, "bytes_wire": r.stats.bytes_wire,
            "frames_packed": r.stats.frames_packed, "frames_raw": r.stats.frames_raw,
            **({"packer": r.stats.packer} if r.stats.packer else {}),
            "change_id": snap.change_ids.get(r.plan.disk.key),
        })
    wall = time.monotonic() - t
    if m.params.sync.parallel_disks > 1 and len(plans) > 1:
        hash_seconds = min(hash_seconds, wall)  # hashes overlapped: count their wall time
    rec["phases"]["copy"] = wall - hash_seconds
    if hash_seconds:
        rec["phases"]["hash"] = hash_seconds


def _same_disks(m: Migration, disks: list[DiskInfo]) -> None:
    """The disks did not change between reading the VM and taking the snapshot."""
    now = {d.key: d.capacity for d in m.vm().disks}
    before = {d.key: d.capacity for d in disks}
    if now != before:
        raise OperationError(
            f"the disks of VM {m.params.vm} changed while cycle started "
            f"({before} -> {now})", hint="run the cycle again: it follows the new disks",
        )


def _commit(m: Migration, snap: SnapshotInfo, disks: list[DiskInfo], rec: dict[str, Any]) -> None:
    """Store the cycle's change ids, and each copy's modification time now that the cycle
    wrote it last (one round trip: :meth:`Datastore.peek`), which the next cycle checks."""
    seen = m.dst_ds().peek([m.dest_disk_path(d) for d in disks])
    m.workspace.state.commit_cycle(rec["number"], rec["kind"], rec["snapshot_at"], [
        DiskState(key=d.key, path=d.path, dest_path=m.dest_disk_path(d), capacity=d.capacity,
                  change_id=snap.change_ids.get(d.key) if d.cbt_enabled else None,
                  dest_mtime_ns=_mtime(seen.get(m.dest_disk_path(d))))
        for d in disks
    ])
    m.workspace.save()


def _mtime(peeked: Peeked | None) -> int | None:
    return peeked.stat.mtime_ns if peeked is not None and peeked.stat is not None else None


def _remove_snapshot(m: Migration, snap: SnapshotInfo, failed: BaseException | None) -> None:
    """Always remove our snapshot; a failure here must not hide the first error."""
    state = m.workspace.state
    try:
        m.source.remove_snapshot(m.params.vm, snap.id)
    except VmigrateError as exc:
        m.workspace.journal.append("snapshot_remove_failed", snapshot=snap.name,
                                   error=exc.to_dict())
        if failed is None:
            raise SnapshotError(
                f"could not remove snapshot {snap.name}: {exc.message}",
                snapshot=snap.name,
            ) from exc
        return
    ip = state.in_progress
    if ip is not None:
        if ip.committed:
            state.in_progress = None
        else:
            ip.snapshot_removed = True
        m.workspace.save()


def _finish_record(m: Migration, rec: dict[str, Any], failed: BaseException | None) -> None:
    rec["ended"] = time.time()
    rec["duration"] = rec["ended"] - rec["started"]
    disks = rec["disks"]
    rec["bytes_changed"] = sum(d["bytes_changed"] for d in disks)
    rec["bytes_read"] = sum(d["bytes_read"] for d in disks)
    rec["bytes_sent"] = sum(d["bytes_sent"] for d in disks)
    rec["bytes_zero"] = sum(d["bytes_zero"] for d in disks)
    rec["bytes_wire"] = sum(d.get("bytes_wire", 0) for d in disks)
    rec["codecs"] = sorted({d["codec"] for d in disks if d.get("codec")})
    rec["extents"] = sum(d["extents"] for d in disks)
    # reconnects, resumed streams, the direct-mode decision: the evidence shows them
    if events := m.take_events():
        rec["dataplane_events"] = events
    copy_secs = rec["phases"].get("copy", 0.0)
    rec["throughput"] = rec["bytes_changed"] / copy_secs if copy_secs > 0 else 0.0
    if failed is None:
        rec["status"] = "ok"
        m.workspace.journal.append("cycle", **rec)
        m.reporter.event(CycleEnded(dict(rec)))
    else:
        rec["status"] = "interrupted" if isinstance(failed, KeyboardInterrupt) else "failed"
        rec["error"] = (failed.to_dict() if isinstance(failed, VmigrateError)
                        else {"error": type(failed).__name__, "message": str(failed)})
        m.workspace.journal.append("cycle_failed", **rec)
        m.reporter.event(CycleFailed(number=rec["number"], status=rec["status"],
                                     error=rec["error"].get("message")))
