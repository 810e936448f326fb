"""Certify: whole-disk (or changed-area) digests on both sides, compared.

A mismatch is listed with its offsets; with ``repair`` the differing blocks are
copied again from the frozen source and compared once more.  A disk that stays
different is marked untrusted, so the next cycle hash-compares it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..control.host import SnapshotInfo
from ..dataplane.datastore import BlockDigest
from ..errors import CertifyMismatch
from ..extents import Extent, align, total
from .changeset import DiskPlan
from .compare import CompareResult, compare, forget_remembered, pick_algorithm
from .context import Migration
from .copier import copy_extents
from .progress import PhaseReached


def rate_progress(m: Migration, planned: int) -> Callable[[int], None]:
    """A progress callback for a hash pass that also reports the rate."""
    t0 = time.monotonic()

    def report(done: int) -> None:
        dt = time.monotonic() - t0
        m.reporter.progress(done, planned, done / dt if dt > 0 else 0.0)

    return report


def certify_disks(
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
        s = plan.streamed
        if (s is not None and s.algorithm != algo and m.params.sync.algorithm == "auto"
                and s.algorithm in set(src.algorithms()) & set(dst.algorithms())):
            # a parallel disk's agents ranked their stdlib digests apart at start (sha1 and
            # sha256 run close): the copy's digests, in an algorithm both sides have, serve
            algo = s.algorithm
        # a delta hashes what changed, cut on the block grid, not the blocks around it
        extents = None if mode == "full" else align(plan.extents, 1, disk.capacity)
        if extents is not None and not extents:
            summary["disks"][str(disk.key)] = {"result": "identical", "blocks": 0, "bytes": 0}
            continue
        m.reporter.event(PhaseReached(phase="certify", detail=f"disk {disk.key} ({mode}, {algo})"))
        streamed = _streamed(plan, algo, block, extents)
        back = plan.streamed.dest if streamed is not None and plan.streamed else None
        res = compare(src, src_path, dst, dst_path, block_size=block, algorithm=algo,
                      size=disk.capacity, extents=extents, src_digests=streamed, dst_digests=back,
                      on_progress=rate_progress(m, total(extents) if extents else disk.capacity))
        if not res.identical and repair:
            m.workspace.journal.append("certify_mismatch", disk=disk.key, repairing=True,
                                       mismatches=[list(e) for e in res.mismatches[:1000]])
            forget_remembered(m, disk.key)  # the repair rewrites the destination
            copy_extents(src, src_path, dst, dst_path, res.mismatches)
            res = compare(src, src_path, dst, dst_path, block_size=block, algorithm=algo,
                          size=disk.capacity, extents=extents)
            summary.setdefault("repaired", []).append(disk.key)
        results[disk.key] = res
        # where the source's digests of the first compare came from
        summary["disks"][str(disk.key)] = {**res.summary(),
                                           "source": "read" if streamed is None else "streamed",
                                           "destination": "read" if back is None else "read back"}
        if not res.identical:
            summary["result"] = "MISMATCH"
    rec["certify"] = summary
    bad = {k: r for k, r in results.items() if not r.identical}
    if bad:
        for key, r in bad.items():
            m.workspace.state.mark_untrusted(
                key, f"certify found {len(r.mismatches)} differing extents in cycle {rec['number']}")
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


def _streamed(plan: DiskPlan, algo: str, block: int,
              extents: list[Extent] | None) -> list[BlockDigest] | None:
    """The source's digests from this cycle's copy when they cover exactly what certify
    hashes (same algorithm, block and extents, or both the whole disk); else None: the
    source is read."""
    s = plan.streamed
    if s is None or (s.algorithm, s.block, s.extents) != (algo, block, extents):
        return None
    return s.digests
