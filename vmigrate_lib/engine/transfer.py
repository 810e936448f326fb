"""Move every disk's plan to the destination, several disks at a time.

One disk is one stream (one agent on each side); disks run in parallel up to
``sync.parallel_disks``, because a single stream is often bound by one core's
cipher or hash speed while the link and the disks have room.  Each disk keeps
its own durable checkpoints, so an interrupted parallel copy resumes per disk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..control.host import SnapshotInfo
from ..dataplane.datastore import Datastore
from ..errors import Interrupted
from ..extents import Extent, normalize, total
from .changeset import DiskPlan
from .compare import forget_remembered, hash_compare_disk, pick_algorithm
from .context import Migration
from .copier import CopyStats, StreamedDigests, copy_extents
from .progress import DiskPlanned, PhaseReached


@dataclass
class DiskResult:
    plan: DiskPlan
    stats: CopyStats
    hash_seconds: float


class _Progress:
    """Sums the progress of the disks in flight into one figure for the reporter."""

    def __init__(self, m: Migration) -> None:
        self.m = m
        self.lock = threading.Lock()
        self.done: dict[int, int] = {}
        self.total: dict[int, int] = {}
        self.t0 = time.monotonic()

    def callback(self, key: int, planned: int, stop: threading.Event) -> Callable[[int], None]:
        def report(done: int) -> None:
            if stop.is_set():  # another disk failed or the operator interrupted
                raise Interrupted(f"copy of disk {key} stopped", disk=key)
            with self.lock:
                self.done[key], self.total[key] = done, planned
                d, t = sum(self.done.values()), sum(self.total.values())
            dt = time.monotonic() - self.t0
            self.m.reporter.progress(d, t, d / dt if dt > 0 else 0.0)

        return report


def copy_disks(m: Migration, snap: SnapshotInfo, plans: list[DiskPlan]) -> list[DiskResult]:
    """Copy all plans (hash-comparing first where the plan says so), in plan order."""
    workers = max(1, min(m.params.sync.parallel_disks, len(plans)))
    progress = _Progress(m)
    stop = threading.Event()
    if workers == 1:
        return [_copy_disk(m, snap, p, m.src_ds(p.disk.datastore), m.dst_ds(), progress, stop)
                for p in plans]

    def work(index: int, plan: DiskPlan) -> DiskResult:
        if index == 0:  # the migration's own handles serve the first disk
            return _copy_disk(m, snap, plan, m.src_ds(plan.disk.datastore), m.dst_ds(),
                              progress, stop)
        name = plan.disk.datastore
        pair = m.stream_pair(name)  # its own agents, kept for the next disk or cycle
        ok = False
        try:
            result = _copy_disk(m, snap, plan, *pair, progress, stop)
            ok = True
            return result
        finally:
            m.stream_done(name, pair, ok)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vmigrate-disk") as pool:
        futures = [pool.submit(work, i, p) for i, p in enumerate(plans)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            stop.set()  # the others stop at their next progress report, checkpoints kept
            for f in futures:
                try:
                    f.result()
                except BaseException:
                    pass
            raise


def _copy_disk(
    m: Migration, snap: SnapshotInfo, plan: DiskPlan, src: Datastore, dst: Datastore,
    progress: _Progress, stop: threading.Event,
) -> DiskResult:
    """Copy one disk's plan; for hash mode first find the differing blocks."""
    disk = plan.disk
    src_path = snap.disk_paths.get(disk.key, disk.path)
    dst_path = m.dest_disk_path(disk)
    hashed = 0.0
    dest_reads = 0
    if plan.mode == "hash":
        algo = pick_algorithm(src, dst, m.params.sync.algorithm)
        m.reporter.event(PhaseReached(phase="hash-compare", detail=f"disk {disk.key} with {algo}"))
        outcome = hash_compare_disk(m, disk, src, src_path, dst, dst_path, algo,
                                    progress.callback(disk.key, disk.capacity, stop))
        res, dest_reads = outcome.result, int(outcome.dest_read)
        hashed = res.seconds
        plan.extents = res.mismatches
        how = "" if outcome.dest_read else " against the destination's remembered digests"
        if how:  # the cycle record says which digests stood for the destination
            plan.reason = f"{plan.reason}; compared{how}"
        m.reporter.event(DiskPlanned(key=disk.key, mode="hash", bytes=total(plan.extents),
                                     extents=len(plan.extents),
                                     reason=f"{res.blocks} blocks compared{how}"))
    else:
        forget_remembered(m, disk.key)  # this copy changes the destination another way
    ws = m.workspace

    def checkpoint(offset: int) -> None:
        with ws.state_lock:
            ws.state.checkpoint(disk.key, offset)
            ws.save()

    report = progress.callback(disk.key, total(plan.extents), stop)
    armed = _arm_digests(m, plan, src, dst)
    stats = copy_extents(
        src, src_path, dst, dst_path, plan.extents,
        checkpoint_bytes=m.params.sync.checkpoint_bytes,
        on_checkpoint=checkpoint, on_progress=lambda done, _total: report(done),
    )
    if armed is not None:
        got, back = src.streamed_digests(), dst.readback_digests()
        plan.streamed = None if got is None else StreamedDigests(*armed, got, back)
    checkpoint(disk.capacity)
    if plan.mode == "hash":  # the source read whole for digests, the destination unless remembered
        stats.bytes_read += (1 + dest_reads) * disk.capacity
    return DiskResult(plan, stats, hashed)


def _arm_digests(m: Migration, plan: DiskPlan, src: Datastore,
                 dst: Datastore) -> tuple[str, int, list[Extent] | None] | None:
    """Certify's digests taken during the copy: the source digests what it streams, the
    destination reads back and digests what it writes (overlapped with the copy), so
    that certify reads neither side after it.  A delta certified on what changed arms
    its extents; a seed (certified whole) arms the whole disk, its unallocated areas
    counted as zeros on the source and read back on the destination (not after a
    resume: the stream would not carry every allocated area).  None when not armed."""
    if not plan.extents:
        return None
    whole = plan.mode == "full"
    if (whole and plan.resumed_from) or (not whole and m.params.sync.certify != "changed"):
        return None
    algo = pick_algorithm(src, dst, m.params.sync.algorithm)
    block = m.params.sync.certify_block
    size = plan.disk.capacity if whole else None
    if not src.stream_digests(algo, block, size):
        return None
    dst.arm_readback(algo, block, size)
    return algo, block, None if whole else normalize(plan.extents)
