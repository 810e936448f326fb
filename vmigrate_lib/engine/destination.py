"""Bob's folder on the destination datastore: made once, owned by one migration.

An owner marker ties the folder to the workspace's migration id, so a second
migration (or a typo in dest_name) can never write into someone else's VM.
The marker is written first beside the folder (``.<folder>.vmigrate-owner.json``,
the *pending* marker), then the folder, then the marker inside it, then the
pending one goes: a run killed anywhere in between leaves a folder that the
next run of the same migration recognises as its own (empty, with its pending
marker), and that every other migration still sees as someone else's.

The source VM's disks may change between cycles (the field notes' pitfall):

* a **grown** disk (VMware extends disks while the VM runs) grows its copy
  sparsely, and the disk is hash-compared this cycle (``recheck``): change ids
  from before an extend are not trusted, whatever the host says;
* a copy **larger** than its source (a shrink, or a copy damaged by someone)
  is a :class:`DiskMismatch`: vmigrate never cuts a copy;
* an **added** disk is a new key: a new copy, seeded in full;
* a **removed** disk keeps its copy (vmigrate never deletes data); the journal
  notes it and the cutover registers Bob with the source's current disks.
"""

from __future__ import annotations

import json
import posixpath
import time
from typing import Any

from ..control.host import DiskInfo, VmInfo
from ..dataplane.datastore import Datastore, Files, FileStat, PeekedFiles
from ..errors import DestinationExists, DiskMismatch, VmigrateError
from ..units import fmt_bytes, fmt_utc
from .claim import claim_path, take_claim
from .context import OWNER_MARKER, Migration
from .progress import PhaseReached, WarningRaised


def size_mismatch(m: Migration, d: DiskInfo, dest_size: int) -> DiskMismatch | None:
    """Why a copy of ``dest_size`` bytes cannot follow source disk ``d``; None if it can grow.

    It can grow when it is smaller than the source and exactly as large as the
    last committed cycle left it (or no cycle committed it yet).
    """
    path = m.dest_disk_path(d)
    if dest_size > d.capacity:
        return DiskMismatch(
            f"destination disk {path} is {dest_size} bytes but source disk {d.key} is now "
            f"{d.capacity} bytes: the copy is larger than its source (was the source disk "
            "shrunk?); vmigrate never cuts a copy",
            hint="a shrunk disk needs a new migration (new workspace and dest_name)",
            disk=d.key, source_size=d.capacity, dest_size=dest_size,
        )
    known = m.workspace.state.disk(d.key, d.path)
    recorded = known.capacity if known is not None else None
    if dest_size < d.capacity and recorded is not None and int(recorded) != dest_size:
        return DiskMismatch(
            f"destination disk {path} is {dest_size} bytes but the last cycle left it at "
            f"{recorded} bytes (source disk {d.key} is {d.capacity} bytes): the copy was "
            "changed outside vmigrate",
            disk=d.key, source_size=d.capacity, dest_size=dest_size, recorded=recorded,
        )
    return None


def growth(d: DiskInfo, dest_size: int) -> str:
    return (f"disk grew from {dest_size} to {d.capacity} bytes "
            f"({fmt_bytes(dest_size)} -> {fmt_bytes(d.capacity)})")


def pending_marker(folder: str) -> str:
    """Where the owner marker is written before the folder exists (beside it)."""
    head, tail = posixpath.split(folder)
    return posixpath.join(head, f".{tail}{OWNER_MARKER}")


def read_marker(ds: Files, path: str) -> dict[str, Any] | None:
    """An owner marker's content; None when absent; an unreadable one names no migration."""
    if ds.stat(path) is None:
        return None
    try:
        data = json.loads(ds.read_file(path))
    except (ValueError, VmigrateError):
        return {"migration_id": "unknown"}
    return data if isinstance(data, dict) else {"migration_id": "unknown"}


def owned_by(ds: Files, folder: str, mid: str | None) -> bool:
    """Whether ``folder`` is migration ``mid``'s: its marker inside, or (after a crash
    between making the folder and marking it) an empty folder with ``mid``'s pending marker."""
    if mid is None:
        return False
    inside = read_marker(ds, f"{folder}/{OWNER_MARKER}")
    if inside is not None:
        return inside.get("migration_id") == mid
    pending = read_marker(ds, pending_marker(folder))
    if pending is None or pending.get("migration_id") != mid:
        return False
    leftovers = [n for n in ds.listdir(folder) if not n.startswith(f"{OWNER_MARKER}.tmp-")]
    return not leftovers  # we made it and wrote nothing in it yet


def other_pending(ds: Files, folder: str, mid: str | None) -> str | None:
    """The id of another migration that is creating ``folder`` (or was killed doing it)."""
    pending = read_marker(ds, pending_marker(folder))
    if pending is None or (mid is not None and pending.get("migration_id") == mid):
        return None
    return str(pending.get("migration_id"))


def _claim_folder(m: Migration, vm: VmInfo, ds: Datastore, seen: Files) -> None:
    """Make Bob's folder and its owner marker, crash-safely (see the module docstring).
    ``seen``: ``ds`` as peeked just before, read until the first change."""
    folder = m.dest_folder
    mid = m.workspace.state.migration_id
    marker = f"{folder}/{OWNER_MARKER}"
    pending = pending_marker(folder)
    if seen.stat(marker) is not None and owned_by(seen, folder, mid):
        if seen.stat(pending) is not None:
            ds.remove(pending)  # killed after the marker, before this
        return
    record = json.dumps({
        "migration_id": mid, "source_vm": vm.name, "source_uuid": vm.uuid,
        "source_host": vm.host, "workspace": str(m.workspace.root), "created": time.time(),
    }, indent=2).encode()
    if seen.stat(folder) is None:
        other = other_pending(seen, folder, mid)
        if other is not None:
            raise DestinationExists(
                f"migration {other} is creating the destination folder [{ds.name}] {folder}",
                hint="choose another dest_name, or use the workspace of that migration; if "
                f"it was abandoned, remove [{ds.name}] {pending}",
                folder=folder, datastore=ds.name, migration_id=other,
            )
        if seen.stat(pending) is None:
            ds.write_file(pending, record, exclusive=True)
        ds.makedirs(folder)
    if not owned_by(ds, folder, mid):  # preflight refuses this; someone was quicker since
        raise DestinationExists(
            f"the destination folder [{ds.name}] {folder} already exists",
            folder=folder, datastore=ds.name,
        )
    ds.write_file(marker, record, exclusive=True)
    ds.remove(pending)
    m.workspace.journal.append("destination_created", datastore=ds.name, folder=folder)


def prepare_destination(m: Migration, vm: VmInfo) -> None:
    """Create Bob's folder, owner marker and sparse disks where missing; grow grown ones;
    note the disks Alice no longer has.  Every check runs before the first change."""
    ds = m.dst_ds()
    claim = claim_path(vm)  # each side's reads in one round trip (Datastore.peek)
    src = m.src_ds(vm.datastore)
    take_claim(m, vm, PeekedFiles(src, src.peek([], [claim])))
    folder = m.dest_folder
    seen = PeekedFiles(ds, ds.peek([folder, *(m.dest_disk_path(d) for d in vm.disks)],
                                   [f"{folder}/{OWNER_MARKER}", pending_marker(folder)]))
    _claim_folder(m, vm, ds, seen)
    m.workspace.state.dest = {"datastore": ds.name, "folder": m.dest_folder}
    sizes = _check_copies(m, vm, seen)
    for d in vm.disks:
        _make_copy(m, ds, d, sizes[d.key])
    _note_removed(m, vm)
    m.workspace.save()


def _check_copies(m: Migration, vm: VmInfo, seen: Files) -> dict[int, int | None]:
    """Each disk's copy size (None: none yet); raises before any change when a new disk
    would land on a kept copy or a copy has a size no cycle left."""
    state = m.workspace.state
    kept = state.kept_copies()
    sizes: dict[int, int | None] = {}
    for d in vm.disks:
        if state.disk(d.key, d.path) is None and m.dest_disk_path(d) in kept:
            raise DiskMismatch(
                f"new source disk {d.key} ({d.path}) would be copied to "
                f"{m.dest_disk_path(d)}, which holds the kept copy of removed disk "
                f"{kept[m.dest_disk_path(d)]}; vmigrate never overwrites it",
                hint="move the kept copy away on the destination (and out of this "
                "migration), or give the new disk another file name",
                disk=d.key, dest_path=m.dest_disk_path(d))
        st = seen.stat(m.dest_disk_path(d))
        if st is not None and st.size != d.capacity:
            err = size_mismatch(m, d, st.size)
            if err is not None:
                raise err
        sizes[d.key] = None if st is None else st.size
        _written_since(m, d, st)
    return sizes


def _written_since(m: Migration, d: DiskInfo, st: FileStat | None) -> None:
    """A copy modified after the last committed cycle wrote it (Bob powered on by hand, a
    tool or a person writing the file): not proven any more, so this cycle reads it whole
    and rewrites what differs (:meth:`MigrationState.mark_untrusted`).  Without this, a
    tracked cycle copies only the source's changes and a "changed" certify hashes only
    those: the stray write would reach the cutover, certified.  Not checked when a killed
    cycle may have written since (it resumes from its checkpoints)."""
    state = m.workspace.state
    ds = state.disk(d.key, d.path)
    if (state.in_progress is not None or ds is None or not ds.seeded or ds.untrusted
            or st is None or ds.dest_mtime_ns is None or st.mtime_ns is None
            or st.mtime_ns == ds.dest_mtime_ns):
        return  # (an untrusted copy, e.g. Bob ran on it before a rollback, is read anyway)
    why = (f"copy {m.dest_disk_path(d)} was modified after cycle {ds.last_cycle} wrote it "
           f"(at {fmt_utc(st.mtime_ns / 1e9)}), by something other than this migration")
    state.mark_untrusted(d.key, why)
    m.workspace.journal.append("destination_modified", disk=d.key, path=m.dest_disk_path(d),
                               committed_mtime_ns=ds.dest_mtime_ns, mtime_ns=st.mtime_ns,
                               detail=why)
    m.reporter.event(WarningRaised(message=f"disk {d.key}: {why}; this cycle reads it whole"))


def _make_copy(m: Migration, ds: Datastore, d: DiskInfo, size: int | None) -> None:
    """One disk's copy: its record (a reused key retires the old one, a returned disk is
    rechecked), then the file created empty or grown sparsely."""
    state, journal = m.workspace.state, m.workspace.journal
    path = m.dest_disk_path(d)
    if d.key in state.disks and state.disk(d.key, d.path) is None:
        old = state.disks[d.key]
        state.disk_entry(d.key, d.path)  # a new disk: the old one's record is retired
        journal.append("disk_key_reused", disk=d.key, path=d.path, old_path=old.path,
                       kept_copy=old.dest_path,
                       detail="a new disk reuses the key of another; it is a new copy")
    ds_state = state.disk(d.key, d.path)
    if ds_state is not None and ds_state.removed is not None:
        ds_state.removed = None
        ds_state.recheck = f"disk {d.key} is back after it was removed"
        journal.append("disk_returned", disk=d.key, path=d.path)
    if size is None:
        ds.create_disk(path, d.capacity, d.provisioning)
        if ds_state is not None and ds_state.seeded:
            ds_state.recheck = f"copy {path} was missing; created empty"
    elif size < d.capacity:
        why = growth(d, size)
        state.disk_entry(d.key, d.path).recheck = why
        m.workspace.save()  # first: a crash after the grow still hash-compares the disk
        ds.grow_disk(path, d.capacity)
        journal.append("disk_grown", disk=d.key, path=path, dest_size=size,
                       capacity=d.capacity, detail=why)
        m.reporter.event(PhaseReached(phase="destination", detail=f"disk {d.key}: {why}"))


def _note_removed(m: Migration, vm: VmInfo) -> None:
    """A disk no longer on Alice: its copy is kept (journaled once), not synced."""
    current = {d.key for d in vm.disks}
    for key, gone in m.workspace.state.disks.items():
        if key not in current and gone.removed is None:
            gone.removed = time.time()
            m.workspace.journal.append(
                "disk_removed", disk=key, source_path=gone.path,
                dest_path=gone.dest_path,
                detail="the disk is no longer on the source VM; its copy is kept, not synced, "
                "and not attached to the destination VM",
            )
            m.reporter.event(PhaseReached(phase="destination",
                                          detail=f"disk {key} was removed from {vm.name}; its copy is kept"))
