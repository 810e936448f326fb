"""What one cycle copies, per disk: the seed, tracked changes, or hash-compare.

The plan per disk is one of:

* ``full``    - the seed: the allocated areas of the frozen source;
* ``tracked`` - the extents changed since the last committed change id;
* ``hash``    - block digests on both sides, copy the blocks that differ (no
  trustworthy change id: tracking off, reset epoch, failed certify, Bob ran).

With ``sync.change_tracking: snapshot-delta`` a seeded disk's ``tracked`` extents are
the grains of the kept snapshot's delta (:mod:`.snapdelta`), hash when there is none.

A run killed mid-copy leaves ``in_progress`` in ``state.json`` with, per disk,
the offset up to which the destination acknowledged durable writes (X) and the
change id of the snapshot being copied (S0).  The next run removes the stale
snapshot, takes a new one (S1), and copies
``changed(S0..S1) in [0, X)  +  plan(S1) in [X, end)``: exactly what is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..control.host import ALL_ALLOCATED, VMIGRATE_SNAPSHOT_PREFIX, DiskInfo, SnapshotInfo
from ..errors import ChangeIdInvalid
from ..extents import Extent, clip, normalize, total, union
from ..modes import DiskMode
from . import snapdelta
from .context import Migration
from .copier import StreamedDigests
from .cycle_records import HASH_CHOSEN
from .progress import DiskPlanned, PhaseReached
from .state import DiskState, InProgress


@dataclass
class DiskPlan:
    disk: DiskInfo
    mode: DiskMode
    extents: list[Extent]
    reason: str = ""
    resumed_from: int = 0
    #: the source's digests as this cycle's copy streamed them (certify reads it once)
    streamed: StreamedDigests | None = None


def clean_stale(m: Migration) -> InProgress | None:
    """Remove a snapshot left by a killed run; return the interrupted cycle's info."""
    state = m.workspace.state
    ip = state.in_progress
    vm = m.params.vm
    kept = snapdelta.kept_name(m)  # snapshot-delta: the last committed cycle's stays
    for s in m.source.list_snapshots(vm):
        if s.name.startswith(f"{VMIGRATE_SNAPSHOT_PREFIX}{state.migration_id}-") \
                and s.name != kept:
            m.reporter.event(PhaseReached(phase="cleanup", detail=f"removing stale snapshot {s.name}"))
            m.source.remove_snapshot(vm, s.id)
            m.workspace.journal.append("stale_snapshot_removed", snapshot=s.name)
    if ip is None:
        return None
    if ip.committed:
        state.in_progress = None
        m.workspace.save()
        return None
    m.workspace.journal.append("resume", interrupted_cycle=ip.number,
                               checkpoints=dict(ip.checkpoints))
    return replace(ip, checkpoints=dict(ip.checkpoints), snap_change_ids=dict(ip.snap_change_ids))


def cbt_doubt(m: Migration, rec: dict[str, object]) -> str:
    """Why this cycle must not trust change tracking: what the host's history says was
    done to the VM since the last cycle's snapshot (a revert, an extend, a disk or
    change-tracking reconfiguration: known ways CBT misses writes, VMware KB 2090639,
    KB 2136854).  Recorded in the cycle record (``cbt_history``) and journaled."""
    state = m.workspace.state
    if not state.seeded or state.last_snapshot_at is None:
        return ""
    changes = m.source.changes_since(m.params.vm, state.last_snapshot_at)
    if changes is None:
        rec["cbt_history"] = "unavailable"
        return ""
    rec["cbt_history"] = [{"kind": c.kind, "at": c.at, "detail": c.detail} for c in changes]
    if not changes:
        return ""
    said = "; ".join(f"{c.kind}: {c.detail}" for c in changes[:3])
    more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
    reason = f"VM changed since the last cycle ({said}{more}): change tracking may miss writes"
    m.workspace.journal.append("cbt_distrusted", reason=reason, changes=rec["cbt_history"])
    return reason


def _query(m: Migration, snap: SnapshotInfo, disk: DiskInfo, since: str) -> list[Extent]:
    return normalize(m.source.query_changed_areas(m.params.vm, snap, disk.key, since))


def plan_disk(
    m: Migration, snap: SnapshotInfo, disk: DiskInfo, resume: InProgress | None,
    doubt: str = "",
) -> DiskPlan:
    """What to copy for one disk.  An untrusted copy is hash-compared before any rule
    (seed or resume) may trust a checkpoint: a failed certify or an edited state
    never again decides what is "already there".  ``doubt`` (the VM was reverted,
    extended or reconfigured since the last cycle: :func:`cbt_doubt`) hash-compares
    a seeded disk whatever its change id says.
    """
    dstate = m.workspace.state.disk(disk.key, disk.path) or DiskState(key=disk.key)
    base = dstate.change_id
    cap = disk.capacity
    src_path = snap.disk_paths.get(disk.key, disk.path)

    def allocated() -> list[Extent]:
        if disk.cbt_enabled:
            try:
                return _query(m, snap, disk, ALL_ALLOCATED)
            except ChangeIdInvalid:
                pass
        return m.src_ds(disk.datastore).allocated(src_path)

    if dstate.untrusted:  # first: also a seed whose certify failed, or an edited state
        plan = DiskPlan(disk, "hash", [], f"destination not proven: {dstate.untrusted}")
    elif not dstate.seeded:
        plan = DiskPlan(disk, "full", clip(allocated(), 0, cap), "seed: allocated areas")
    elif m.params.sync.change_tracking == "hash":
        plan = DiskPlan(disk, "hash", [], HASH_CHOSEN)
    elif dstate.recheck:  # grown, returned or recreated: prove it by hashes
        plan = DiskPlan(disk, "hash", [], dstate.recheck)
    elif doubt:
        plan = DiskPlan(disk, "hash", [], doubt)
    elif m.params.sync.change_tracking == snapdelta.MODE:
        found, why = snapdelta.changed(m, snap, disk)
        plan = DiskPlan(disk, "hash" if found is None else "tracked", found or [], why)
        resume = None  # the kept delta holds every write since the last committed cycle
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
        x = resume.checkpoints.get(str(disk.key), 0)
        s0 = resume.snap_change_ids.get(str(disk.key))
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
    m.reporter.event(DiskPlanned(key=disk.key, mode=plan.mode, bytes=total(plan.extents),
                                 extents=len(plan.extents), reason=plan.reason))
    return plan
