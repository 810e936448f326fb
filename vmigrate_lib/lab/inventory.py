"""A lab host's inventory: which VMs are registered, and where their config lives.

``<root>/hosts/<host>/inventory.json`` maps a VM name to a VMware-style path
``"[datastore1] alice/alice.vmx.json"``; registering and unregistering only
touch this file, never the VM's files (as on ESXi).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError, VmNotFound
from .layout import LabLayout, atomic_write_json, file_lock, read_json

_DS_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\] (?P<path>.+)$")


def parse_ds_path(ds_path: str) -> tuple[str, str]:
    """``"[ds] a/b"`` -> ``("ds", "a/b")``."""
    m = _DS_PATH.match(ds_path)
    if not m:
        raise LabError(f"not a datastore path: {ds_path!r}", ds_path=ds_path)
    return m["ds"], m["path"]


@dataclass(frozen=True)
class VmLocation:
    """Where a registered VM's files are."""

    name: str
    datastore: str
    folder: str  #: relative to the datastore root
    config_file: str  #: file name inside the folder
    vmdir: Path

    @property
    def config_path(self) -> Path:
        return self.vmdir / self.config_file


class Inventory:
    def __init__(self, layout: LabLayout, host: str) -> None:
        self.layout = layout
        self.host = host
        self.path = layout.inventory_path(host)

    def entries(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        data = read_json(self.path)
        if not isinstance(data, dict):
            raise LabError(f"inventory {self.path} is damaged", path=str(self.path))
        return {str(k): str(v) for k, v in data.items()}

    def names(self) -> list[str]:
        return sorted(self.entries())

    def lookup(self, name: str) -> VmLocation | None:
        ds_path = self.entries().get(name)
        if ds_path is None:
            return None
        ds, rel = parse_ds_path(ds_path)
        folder, _, cfg = rel.rpartition("/")
        return VmLocation(name, ds, folder, cfg, self.layout.datastore_dir(self.host, ds) / folder)

    def locate(self, name: str) -> VmLocation:
        loc = self.lookup(name)
        if loc is None:
            raise VmNotFound(f"no VM {name!r} on lab host {self.host}", vm=name, host=self.host)
        return loc

    @contextmanager
    def locked(self) -> Iterator[dict[str, str]]:
        """Read-modify-write the inventory under its lock; the yielded dict is saved."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path.with_name(".inventory.lock"), what=f"inventory of {self.host}"):
            entries = self.entries()
            yield entries
            atomic_write_json(self.path, entries)

    def add(self, name: str, datastore: str, folder: str, config_file: str) -> None:
        with self.locked() as entries:
            entries[name] = f"[{datastore}] {folder}/{config_file}"

    def remove(self, name: str) -> None:
        with self.locked() as entries:
            entries.pop(name, None)
