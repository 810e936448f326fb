"""``sync.change_tracking: snapshot-delta``: changes from the kept snapshot's delta.

The OneDiff way, for hosts without a changed-block query (standalone ESXi over
SSH): each cycle keeps its snapshot open (journal ``snapshot_kept``; its name is
the committed cycle's, ``vmigrate-<id>-c<N>``, so the workspace finds it again).
Cycle N+1 takes its snapshot on top, which freezes the kept one's delta: exactly
the writes since cycle N.  The agent reads that delta's grain table where it lives
(``Datastore.delta_extents``), then the kept snapshot is removed, which merges its
delta into the base: the base is then frozen at the new snapshot and the changed
grains are read from it like tracked extents.  The final cycle (Alice off) keeps
nothing.  Whatever goes wrong (no kept snapshot, a killed cycle that removed it,
a delta the reader refuses) the disk is hash-compared, never trusted blindly.
"""

from __future__ import annotations

import posixpath
import re

from ..control.host import VMIGRATE_SNAPSHOT_PREFIX, DiskInfo, SnapshotInfo
from ..errors import VmigrateError
from ..extents import Extent, clip, normalize
from .context import Migration
from .progress import PhaseReached

MODE = "snapshot-delta"
#: a delta descriptor's extent line (VMware Virtual Disk Format 5.0; QEMU block/vmdk.c
#: vmdk_parse_extents): ``RW 16384 SESPARSE "alice-000001-sesparse.vmdk"``
_EXTENT = re.compile(r'^RW\s+\d+\s+(?:SESPARSE|VMFSSPARSE)\s+"([^"]+)"\s*$', re.M)
_DS_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\] (?P<path>.+)$")


def active(m: Migration) -> bool:
    return m.params.sync.change_tracking == MODE and m.source.keeps_snapshot_chain


def kept_name(m: Migration) -> str | None:
    """The name of the snapshot the last committed cycle kept (if this mode is on)."""
    state = m.workspace.state
    if not active(m) or not state.seeded:
        return None
    return f"{VMIGRATE_SNAPSHOT_PREFIX}{state.migration_id}-c{state.cycles}"


def kept_snapshot(m: Migration) -> SnapshotInfo | None:
    name = kept_name(m)
    if name is None:
        return None
    return next((s for s in m.source.list_snapshots(m.params.vm) if s.name == name), None)


def take_snapshot(m: Migration, vm: str, name: str) -> SnapshotInfo:
    """On top of the kept snapshot when there is one, else a plain cycle snapshot."""
    if kept_snapshot(m) is not None:
        return m.source.create_snapshot_on_top(vm, name, "vmigrate sync cycle")
    return m.source.create_snapshot(vm, name, description="vmigrate sync cycle")


def _data_file(m: Migration, descriptor: str) -> tuple[str, str]:
    """(datastore, path) of the delta's data file, read from its descriptor."""
    where = _DS_PATH.match(descriptor)
    if where is None:
        raise ValueError(f"not a datastore path: {descriptor!r}")
    text = m.src_ds(where["ds"]).read_file(where["path"]).decode("utf-8", "replace")
    extent = _EXTENT.search(text)
    if extent is None:
        raise ValueError(f"{descriptor}: no SESPARSE or VMFSSPARSE extent line")
    return where["ds"], posixpath.join(posixpath.dirname(where["path"]), extent[1])


def changed(m: Migration, snap: SnapshotInfo, disk: DiskInfo) -> tuple[list[Extent] | None, str]:
    """The areas the kept snapshot's (now frozen) delta changed, or None and why not."""
    older = kept_snapshot(m)
    if older is None or older.id == snap.id:
        return None, "snapshot-delta: no snapshot kept from the last cycle"
    try:
        desc = m.source.snapshot_deltas(m.params.vm, older.id).get(disk.key)
        if desc is None:
            return None, f"snapshot-delta: {older.name} has no delta of disk {disk.key}"
        ds, path = _data_file(m, desc)
        found = m.src_ds(ds).delta_extents(path)
    except (VmigrateError, ValueError, OSError) as exc:
        why = exc.one_line() if isinstance(exc, VmigrateError) else str(exc)
        m.workspace.journal.append("snapshot_delta_unreadable", disk=disk.key, error=why)
        return None, f"snapshot-delta: delta of {older.name} not readable ({why})"
    if found is None:
        return None, "snapshot-delta: the source's agent cannot read snapshot deltas"
    if found.capacity != disk.capacity:
        return None, f"snapshot-delta: delta of {found.capacity} bytes, disk of {disk.capacity}"
    return (clip(normalize(found.changed), 0, disk.capacity),
            f"snapshot-delta: grains of {older.name}'s {found.format} delta")


def release_older(m: Migration, snap: SnapshotInfo) -> None:
    """Once every disk is planned: remove the kept snapshot (its delta merges into the
    base, which is then frozen at ``snap``).  A crash after this leaves no kept
    snapshot, and the next cycle hash-compares."""
    older = kept_snapshot(m)
    if older is None or older.id == snap.id:
        return
    m.reporter.event(PhaseReached(phase="snapshot", detail=f"removing older {older.name}"))
    m.source.remove_snapshot(m.params.vm, older.id)
    m.workspace.journal.append("snapshot_consolidated", snapshot=older.name, under=snap.name)


def keep(m: Migration, snap: SnapshotInfo, kind: str, failed: BaseException | None) -> bool:
    """Whether the cycle keeps ``snap`` open for the next (a delta cycle that committed,
    in this mode); journaled, and the cycle is then over in ``state.json``."""
    if failed is not None or kind == "final" or not active(m):
        return False
    m.workspace.journal.append("snapshot_kept", snapshot=snap.name, snapshot_id=snap.id)
    state = m.workspace.state
    if state.in_progress is not None and state.in_progress.committed:
        state.in_progress = None
        m.workspace.save()
    return True


def remove_ours(m: Migration, why: str) -> list[str]:
    """Remove every snapshot of this migration (the kept one included): an abandoned
    migration must not leave Alice running on a delta that grows for ever."""
    prefix = f"{VMIGRATE_SNAPSHOT_PREFIX}{m.workspace.state.migration_id}-"
    gone = []
    for s in reversed(m.source.list_snapshots(m.params.vm)):  # newest first
        if s.name.startswith(prefix):
            m.source.remove_snapshot(m.params.vm, s.id)
            m.workspace.journal.append("snapshot_removed", snapshot=s.name, reason=why)
            gone.append(s.name)
    return gone


__all__ = ["MODE", "active", "changed", "keep", "kept_name", "kept_snapshot", "release_older",
           "remove_ours", "take_snapshot"]
