"""A migration in progress: the two hosts, their datastores, the workspace, the reporter.

The engine receives hosts already built (see :mod:`vmigrate_lib.session`), so
it never knows whether they are lab folders, ESXi over SSH or vCenter.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..control.host import DiskInfo, Host, VmInfo
from ..dataplane.datastore import Datastore
from ..params import MigrationParams
from .progress import Reporter
from .workspace import Workspace

OWNER_MARKER = ".vmigrate-owner.json"


@dataclass
class Migration:
    params: MigrationParams
    source: Host
    dest: Host
    workspace: Workspace
    reporter: Reporter = field(default_factory=Reporter)
    _src_ds: dict[str, Datastore] = field(default_factory=dict)
    _dst_ds: Datastore | None = None

    # --- names --------------------------------------------------------------------
    @property
    def dest_datastore_name(self) -> str:
        if self.params.destination.datastore:
            return self.params.destination.datastore
        state = self.workspace.current
        stored = state.dest.get("datastore") if state is not None else None
        if stored:
            return str(stored)
        names = self.dest.datastores()
        return names[0] if names else ""

    @property
    def dest_folder(self) -> str:
        return self.params.target_name

    def dest_disk_path(self, disk: DiskInfo) -> str:
        """Bob's copy of one of Alice's disks, in Bob's folder, renamed after him."""
        base = posixpath.basename(disk.path)
        if self.params.target_name != self.params.vm and base.startswith(self.params.vm):
            base = self.params.target_name + base[len(self.params.vm) :]
        return f"{self.dest_folder}/{base}"

    # --- data plane handles ---------------------------------------------------------------
    def src_ds(self, name: str) -> Datastore:
        if name not in self._src_ds:
            self._src_ds[name] = self.source.open_datastore(name)
        return self._src_ds[name]

    def dst_ds(self) -> Datastore:
        if self._dst_ds is None:
            self._dst_ds = self.dest.open_datastore(self.dest_datastore_name)
        return self._dst_ds

    def vm(self) -> VmInfo:
        return self.source.find_vm(self.params.vm)

    def identity(self) -> dict[str, Any]:
        """What ties a workspace to one migration (checked on every run)."""
        return {
            "vm": self.params.vm,
            "source_host": self.params.source.host,
            "dest_host": self.params.destination.host,
            "dest_name": self.params.target_name,
        }

    def close(self) -> None:
        for ds in self._src_ds.values():
            ds.close()
        self._src_ds.clear()
        if self._dst_ds is not None:
            self._dst_ds.close()
            self._dst_ds = None

    def __enter__(self) -> Migration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
