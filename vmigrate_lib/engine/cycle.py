"""One sync cycle: snapshot, find what changed, copy it, certify, remove the snapshot.

The cycle's plan per disk is one of:

* ``full``    - the seed: the allocated areas of the frozen source;
* ``tracked`` - the extents changed since the last committed change id;
* ``hash``    - block digests on both sides, copy the blocks that differ (no
  trustworthy change id: tracking off, reset epoch, resized disk, failed certify).

A run killed mid-copy leaves ``in_progress`` in ``state.json`` with, per disk,
the offset up to which the destination acknowledged durable writes (X) and the
change id of the snapshot being copied (S0).  The next run removes the stale
snapshot, takes a new one (S1), and copies
``changed(S0..S1) in [0, X)  +  plan(S1) in [X, end)``: exactly what is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..control.host import ALL_ALLOCATED, VMIGRATE_SNAPSHOT_PREFIX, DiskInfo, SnapshotInfo
from ..errors import (
    CertifyMismatch,
    ChangeIdInvalid,
    Interrupted,
    SnapshotError,
    VmigrateError,
    WorkspaceMismatch,
)
from ..extents import Extent, align, clip, normalize, total, union
from .compare import CompareResult, compare, pick_algorithm
from .context import Migration
from .copier import CopyStats, copy_extents
from .destination import prepare_destination


@dataclass
class DiskPlan:
    disk: DiskInfo
    mode: str  #: full | tracked | hash
    extents: list[Extent]
    reason: str = ""
    resumed_from: int = 0


@dataclass
class CycleOutcome:
    record: dict[str, Any]
    certify: dict[int, CompareResult] = field(default_factory=dict)


def run_cycle(
    m: Migration, kind: str = "delta", *, certify: str | None = None, repair: bool = False
) -> CycleOutcome:
    """Run one cycle and record it; the snapshot is removed whatever happens."""
    ws, state, p = m.workspace, m.workspace.state, m.params
    if not state.get("migration_id"):
        raise WorkspaceMismatch(
            f"workspace {ws.root} is not claimed by a migration yet",
            hint="start the migration first (vmigrate sync, or engine.sync.start)",
        )
    if not state.get("seeded"):
        kind = "seed"
    number = int(state.get("cycles", 0)) + 1
    certify_mode = "full" if kind == "seed" else (certify or p.sync.certify)
    rec: dict[str, Any] = {
        "number": number, "kind": kind, "started": time.time(), "phases": {},
        "disks": [], "certify_mode": certify_mode, "resumed": False,
    }
    m.reporter.event("cycle_start", number=number, kind=kind)
    phases: dict[str, float] = rec["phases"]

    t = time.monotonic()
    resume = _clean_stale(m)
    rec["resumed"] = resume is not None
    vm = m.vm()
    disks = list(vm.disks)
    prepare_destination(m, vm)
    snap_name = f"{VMIGRATE_SNAPSHOT_PREFIX}{state['migration_id']}-c{number}"
    snap = m.source.create_snapshot(vm.name, snap_name, description="vmigrate sync cycle")
    rec["snapshot_at"] = time.time()
    prev = state.get("last_snapshot_at")
    rec["interval"] = rec["snapshot_at"] - prev if prev else None
    state["in_progress"] = {
        "number": number, "kind": kind, "snapshot_id": snap.id, "snapshot_name": snap.name,
        "snap_change_ids": {str(k): v for k, v in snap.change_ids.items()},
        "checkpoints": {}, "started": rec["started"], "committed": False,
    }
    ws.save()
    phases["snapshot"] = time.monotonic() - t
    m.reporter.event("phase", phase="snapshot", detail=f"{snap.name} in {phases['snapshot']:.2f} s")
    failed: BaseException | None = None
    try:
        t = time.monotonic()
        plans = [_plan_disk(m, snap, d, resume) for d in disks]
        phases["query"] = time.monotonic() - t
        copy_total = CopyStats()
        t = time.monotonic()
        hash_seconds = 0.0
        for plan in plans:
            stats, hashed = _copy_disk(m, snap, plan)
            hash_seconds += hashed
            copy_total.add(stats)
            rec["disks"].append({
                "key": plan.disk.key, "mode": plan.mode, "reason": plan.reason,
                "bytes_changed": total(plan.extents), "extents": len(plan.extents),
                "bytes_read": stats.bytes_read, "bytes_sent": stats.bytes_sent,
                "bytes_zero": stats.bytes_zero, "resumed_from": plan.resumed_from,
                "change_id": snap.change_ids.get(plan.disk.key),
            })
        phases["copy"] = time.monotonic() - t - hash_seconds
        if hash_seconds:
            phases["hash"] = hash_seconds
        t = time.monotonic()
        results = _certify(m, snap, plans, certify_mode, repair, rec)
        phases["certify"] = time.monotonic() - t
        _commit(m, snap, disks, rec)
        return CycleOutcome(rec, results)
    except KeyboardInterrupt as exc:
        failed = exc
        raise Interrupted(f"cycle {number} interrupted", cycle=number) from exc
    except BaseException as exc:
        failed = exc
        raise
    finally:
        t = time.monotonic()
        _remove_snapshot(m, snap, failed)
        phases["cleanup"] = time.monotonic() - t
        _finish_record(m, rec, failed)


def _clean_stale(m: Migration) -> dict[str, Any] | None:
    """Remove a snapshot left by a killed run; return the interrupted cycle's info."""
    state = m.workspace.state
    ip = state.get("in_progress")
    vm = m.params.vm
    for s in m.source.list_snapshots(vm):
        if s.name.startswith(f"{VMIGRATE_SNAPSHOT_PREFIX}{state['migration_id']}-"):
            m.reporter.event("phase", phase="cleanup", detail=f"removing stale snapshot {s.name}")
            m.source.remove_snapshot(vm, s.id)
            m.workspace.journal.append("stale_snapshot_removed", snapshot=s.name)
    if ip is None:
        return None
    if ip.get("committed"):
        state["in_progress"] = None
        m.workspace.save()
        return None
    m.workspace.journal.append("resume", interrupted_cycle=ip.get("number"),
                               checkpoints=ip.get("checkpoints", {}))
    return dict(ip)


def _query(m: Migration, snap: SnapshotInfo, disk: DiskInfo, since: str) -> list[Extent]:
    return normalize(m.source.query_changed_areas(m.params.vm, snap, disk.key, since))


def _plan_disk(
    m: Migration, snap: SnapshotInfo, disk: DiskInfo, resume: dict[str, Any] | None
) -> DiskPlan:
    state = m.workspace.state
    dstate = state["disks"].get(str(disk.key), {})
    base = dstate.get("change_id")
    cap = disk.capacity
    src_path = snap.disk_paths.get(disk.key, disk.path)

    def allocated() -> list[Extent]:
        if disk.cbt_enabled:
            try:
                return _query(m, snap, disk, ALL_ALLOCATED)
            except ChangeIdInvalid:
                pass
        return m.src_ds(disk.datastore).allocated(src_path)

    if not dstate.get("seeded"):
        plan = DiskPlan(disk, "full", allocated(), "seed: allocated areas")
    elif m.params.sync.change_tracking == "hash":
        plan = DiskPlan(disk, "hash", [], "sync.change_tracking=hash")
    elif dstate.get("untrusted"):
        plan = DiskPlan(disk, "hash", [], f"destination not proven: {dstate['untrusted']}")
    elif not disk.cbt_enabled or not base:
        plan = DiskPlan(disk, "hash", [], "change tracking is off")
    else:
        try:
            plan = DiskPlan(disk, "tracked", _query(m, snap, disk, base), f"changed since {base}")
        except ChangeIdInvalid as exc:
            m.workspace.journal.append("change_id_invalid", disk=disk.key, change_id=base,
                                       detail=exc.one_line())
            plan = DiskPlan(disk, "hash", [], f"change id {base} is no longer valid")
    if resume and plan.mode != "hash":
        x = int(resume.get("checkpoints", {}).get(str(disk.key), 0))
        s0 = resume.get("snap_change_ids", {}).get(str(disk.key))
        if x > 0 and s0:
            try:
                early = clip(_query(m, snap, disk, s0), 0, x) if disk.cbt_enabled else None
            except ChangeIdInvalid:
                early = None
            if early is None:
                plan = DiskPlan(disk, "hash", [], "resume without a valid change id")
            else:
                plan.extents = union(early, clip(plan.extents, x, cap))
                plan.resumed_from = x
                plan.reason += f"; resumed at {x}"
    m.reporter.event("disk", key=disk.key, mode=plan.mode, bytes=total(plan.extents),
                     extents=len(plan.extents), reason=plan.reason)
    return plan


def _copy_disk(m: Migration, snap: SnapshotInfo, plan: DiskPlan) -> tuple[CopyStats, float]:
    """Copy one disk's plan; for hash mode first find the differing blocks."""
    disk = plan.disk
    src = m.src_ds(disk.datastore)
    dst = m.dst_ds()
    src_path = snap.disk_paths.get(disk.key, disk.path)
    dst_path = m.dest_disk_path(disk)
    hashed = 0.0
    if plan.mode == "hash":
        algo = pick_algorithm(src, dst, m.params.sync.algorithm)
        m.reporter.event("phase", phase="hash-compare", detail=f"disk {disk.key} with {algo}")
        res = compare(src, src_path, dst, dst_path, block_size=m.params.sync.hash_block,
                      algorithm=algo, on_progress=_rate_progress(m, disk.capacity))
        hashed = res.seconds
        plan.extents = res.mismatches
        m.reporter.event("disk", key=disk.key, mode="hash", bytes=total(plan.extents),
                         extents=len(plan.extents), reason=f"{res.blocks} blocks compared")
    ip = m.workspace.state["in_progress"]
    t0 = time.monotonic()

    def checkpoint(offset: int) -> None:
        ip["checkpoints"][str(disk.key)] = offset
        m.workspace.save()

    def progress(done: int, total_: int) -> None:
        dt = time.monotonic() - t0
        m.reporter.progress(done, total_, done / dt if dt > 0 else 0.0)

    stats = copy_extents(
        src, src_path, dst, dst_path, plan.extents,
        checkpoint_bytes=m.params.sync.checkpoint_bytes,
        on_checkpoint=checkpoint, on_progress=progress,
    )
    checkpoint(disk.capacity)
    if plan.mode == "hash":
        stats.bytes_read += 2 * disk.capacity  # both sides read whole for digests
    return stats, hashed


def _rate_progress(m: Migration, planned: int) -> Callable[[int], None]:
    """A progress callback for a hash pass that also reports the rate."""
    t0 = time.monotonic()

    def report(done: int) -> None:
        dt = time.monotonic() - t0
        m.reporter.progress(done, planned, done / dt if dt > 0 else 0.0)

    return report


def _certify(
    m: Migration, snap: SnapshotInfo, plans: list[DiskPlan], mode: str, repair: bool,
    rec: dict[str, Any],
) -> dict[int, CompareResult]:
    results: dict[int, CompareResult] = {}
    if mode == "none":
        rec["certify"] = {"result": "skipped"}
        return results
    block = m.params.sync.certify_block
    summary: dict[str, Any] = {"mode": mode, "disks": {}, "result": "identical"}
    for plan in plans:
        disk = plan.disk
        src, dst = m.src_ds(disk.datastore), m.dst_ds()
        src_path = snap.disk_paths.get(disk.key, disk.path)
        dst_path = m.dest_disk_path(disk)
        algo = pick_algorithm(src, dst, m.params.sync.algorithm)
        extents = None if mode == "full" else align(plan.extents, block, disk.capacity)
        if extents is not None and not extents:
            summary["disks"][str(disk.key)] = {"result": "identical", "blocks": 0, "bytes": 0}
            continue
        m.reporter.event("phase", phase="certify", detail=f"disk {disk.key} ({mode}, {algo})")
        res = compare(src, src_path, dst, dst_path, block_size=block, algorithm=algo,
                      extents=extents,
                      on_progress=_rate_progress(m, total(extents) if extents else disk.capacity))
        if not res.identical and repair:
            m.workspace.journal.append("certify_mismatch", disk=disk.key, repairing=True,
                                       mismatches=[list(e) for e in res.mismatches[:1000]])
            copy_extents(src, src_path, dst, dst_path, res.mismatches)
            res = compare(src, src_path, dst, dst_path, block_size=block, algorithm=algo,
                          extents=extents)
            summary.setdefault("repaired", []).append(disk.key)
        results[disk.key] = res
        summary["disks"][str(disk.key)] = res.summary()
        if not res.identical:
            summary["result"] = "MISMATCH"
    rec["certify"] = summary
    bad = {k: r for k, r in results.items() if not r.identical}
    if bad:
        for key, r in bad.items():
            m.workspace.state["disks"].setdefault(str(key), {})["untrusted"] = (
                f"certify found {len(r.mismatches)} differing extents in cycle {rec['number']}"
            )
        m.workspace.save()
        first = next(iter(bad.values()))
        raise CertifyMismatch(
            f"certify found differences on {len(bad)} disk(s): "
            + "; ".join(f"disk {k}: {len(r.mismatches)} extents, first at offset "
                        f"{r.mismatches[0].start if r.mismatches else '?'}" for k, r in bad.items()),
            hint="run vmigrate certify --repair to copy them again; the next cycle "
            "hash-compares these disks",
            disks=list(bad), mismatches=[list(e) for e in first.mismatches[:100]],
        )
    return results


def _commit(m: Migration, snap: SnapshotInfo, disks: list[DiskInfo], rec: dict[str, Any]) -> None:
    state = m.workspace.state
    for d in disks:
        ds = state["disks"].setdefault(str(d.key), {})
        ds.update({
            "path": d.path, "dest_path": m.dest_disk_path(d), "capacity": d.capacity,
            "change_id": snap.change_ids.get(d.key) if d.cbt_enabled else None,
            "seeded": True, "last_cycle": rec["number"],
        })
        ds.pop("untrusted", None)
    state["cycles"] = rec["number"]
    state["seeded"] = True
    state["last_snapshot_at"] = rec["snapshot_at"]
    state["last_cycle_kind"] = rec["kind"]
    state["in_progress"]["committed"] = True
    m.workspace.save()


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
    ip = state.get("in_progress")
    if ip is not None:
        if ip.get("committed"):
            state["in_progress"] = None
        else:
            ip["snapshot_removed"] = True
        m.workspace.save()


def _finish_record(m: Migration, rec: dict[str, Any], failed: BaseException | None) -> None:
    rec["ended"] = time.time()
    rec["duration"] = rec["ended"] - rec["started"]
    disks = rec["disks"]
    rec["bytes_changed"] = sum(d["bytes_changed"] for d in disks)
    rec["bytes_read"] = sum(d["bytes_read"] for d in disks)
    rec["bytes_sent"] = sum(d["bytes_sent"] for d in disks)
    rec["bytes_zero"] = sum(d["bytes_zero"] for d in disks)
    rec["extents"] = sum(d["extents"] for d in disks)
    copy_secs = rec["phases"].get("copy", 0.0)
    rec["throughput"] = rec["bytes_changed"] / copy_secs if copy_secs > 0 else 0.0
    if failed is None:
        rec["status"] = "ok"
        m.workspace.journal.append("cycle", **rec)
        m.reporter.event("cycle_end", **rec)
    else:
        rec["status"] = "interrupted" if isinstance(failed, KeyboardInterrupt) else "failed"
        rec["error"] = (failed.to_dict() if isinstance(failed, VmigrateError)
                        else {"error": type(failed).__name__, "message": str(failed)})
        m.workspace.journal.append("cycle_failed", **rec)
        m.reporter.event("cycle_failed", number=rec["number"], status=rec["status"],
                         error=rec["error"].get("message"))
