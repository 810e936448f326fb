"""Bob's folder on the destination datastore: made once, owned by one migration.

An owner marker ties the folder to the workspace's migration id, so a second
migration (or a typo in dest_name) can never write into someone else's VM.

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
import time

from ..control.host import DiskInfo, VmInfo
from ..errors import DiskMismatch
from ..units import fmt_bytes
from .context import OWNER_MARKER, Migration


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


def prepare_destination(m: Migration, vm: VmInfo) -> None:
    """Create Bob's folder, owner marker and sparse disks where missing; grow grown ones."""
    ds = m.dst_ds()
    state = m.workspace.state
    journal = m.workspace.journal
    folder = m.dest_folder
    if ds.stat(folder) is None:
        ds.makedirs(folder)
    marker = f"{folder}/{OWNER_MARKER}"
    if ds.stat(marker) is None:
        ds.write_file(marker, json.dumps({
            "migration_id": state.migration_id, "source_vm": vm.name,
            "source_uuid": vm.uuid, "source_host": vm.host, "created": time.time(),
        }, indent=2).encode(), exclusive=True)
        journal.append("destination_created", datastore=ds.name, folder=folder)
    state.dest = {"datastore": ds.name, "folder": folder}
    kept = state.kept_copies()
    sizes = {}
    for d in vm.disks:  # every check before the first change
        if state.disk(d.key, d.path) is None and m.dest_disk_path(d) in kept:
            raise DiskMismatch(
                f"new source disk {d.key} ({d.path}) would be copied to "
                f"{m.dest_disk_path(d)}, which holds the kept copy of removed disk "
                f"{kept[m.dest_disk_path(d)]}; vmigrate never overwrites it",
                hint="move the kept copy away on the destination (and out of this "
                "migration), or give the new disk another file name",
                disk=d.key, dest_path=m.dest_disk_path(d))
        st = ds.stat(m.dest_disk_path(d))
        if st is not None and st.size != d.capacity:
            err = size_mismatch(m, d, st.size)
            if err is not None:
                raise err
        sizes[d.key] = None if st is None else st.size
    for d in vm.disks:
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
        size = sizes[d.key]
        if size is None:
            ds.create_disk(path, d.capacity)
            if ds_state is not None and ds_state.seeded:
                ds_state.recheck = f"copy {path} was missing; created empty"
        elif size < d.capacity:
            why = growth(d, size)
            state.disk_entry(d.key, d.path).recheck = why
            m.workspace.save()  # first: a crash after the grow still hash-compares the disk
            ds.grow_disk(path, d.capacity)
            journal.append("disk_grown", disk=d.key, path=path, dest_size=size,
                           capacity=d.capacity, detail=why)
            m.reporter.event("phase", phase="destination", detail=f"disk {d.key}: {why}")
    current = {d.key for d in vm.disks}
    for key, gone in state.disks.items():
        if key not in current and gone.removed is None:
            gone.removed = time.time()
            journal.append(
                "disk_removed", disk=key, source_path=gone.path,
                dest_path=gone.dest_path,
                detail="the disk is no longer on the source VM; its copy is kept, not synced, "
                "and not attached to the destination VM",
            )
            m.reporter.event("phase", phase="destination",
                             detail=f"disk {key} was removed from {vm.name}; its copy is kept")
    m.workspace.save()
