"""Bob's folder on the destination datastore: made once, owned by one migration.

An owner marker ties the folder to the workspace's migration id, so a second
migration (or a typo in dest_name) can never write into someone else's VM.
"""

from __future__ import annotations

import json
import time

from ..control.host import VmInfo
from ..errors import DiskMismatch
from .context import OWNER_MARKER, Migration


def prepare_destination(m: Migration, vm: VmInfo) -> None:
    """Create Bob's folder, owner marker and sparse disks where missing."""
    ds = m.dst_ds()
    state = m.workspace.state
    folder = m.dest_folder
    if ds.stat(folder) is None:
        ds.makedirs(folder)
    marker = f"{folder}/{OWNER_MARKER}"
    if ds.stat(marker) is None:
        ds.write_file(marker, json.dumps({
            "migration_id": state["migration_id"], "source_vm": vm.name,
            "source_uuid": vm.uuid, "source_host": vm.host, "created": time.time(),
        }, indent=2).encode(), exclusive=True)
        m.workspace.journal.append("destination_created", datastore=ds.name, folder=folder)
    state["dest"] = {"datastore": ds.name, "folder": folder}
    for d in vm.disks:
        path = m.dest_disk_path(d)
        st = ds.stat(path)
        if st is None:
            ds.create_disk(path, d.capacity)
        elif st.size != d.capacity:
            raise DiskMismatch(
                f"destination disk {path} is {st.size} bytes but source disk {d.key} "
                f"is now {d.capacity} bytes (was the source disk resized?)",
                disk=d.key, source_size=d.capacity, dest_size=st.size,
            )
    m.workspace.save()
