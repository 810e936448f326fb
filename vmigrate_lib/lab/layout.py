"""Where the lab keeps things on disk, and the two primitives every writer uses.

The lab is shared by many processes (CLI runs, runbooks, guest processes), so
every JSON file is replaced atomically (temp + rename) and every mutation of a
VM or an inventory happens under an ``flock`` on a lock file beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..errors import LabError, TimeoutExpired

#: Folder name of the default lab root, created in the current directory.
LAB_DIRNAME = ".vmigrate-lab"

#: Suffix of a VM's config file (VMware's ``.vmx``, as JSON).
VMX_SUFFIX = ".vmx.json"

#: A lab VM folder's runtime state, never copied to a new VM: change maps and snapshot
#: deltas (``-ctk.bin``, ``-delta.bin``, ``-delta.map``), the guest's power lock, pid,
#: control socket, log and boot report, and the folder's own lock.
RUNTIME_SUFFIXES = ("-ctk.bin", "-delta.bin", "-delta.map", ".lock", ".pid", ".sock", ".log",
                    "boot.json")


def default_root() -> Path:
    """The lab root used when none is given: ``./.vmigrate-lab``."""
    return Path.cwd() / LAB_DIRNAME


@dataclass(frozen=True)
class LabLayout:
    """Paths of one lab: ``<root>/hosts/<host>/datastores/<ds>/<vm>/``."""

    root: Path

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    def host_dir(self, host: str) -> Path:
        return self.hosts_dir / host

    def hosts(self) -> list[str]:
        if not self.hosts_dir.is_dir():
            return []
        return sorted(p.name for p in self.hosts_dir.iterdir() if p.is_dir())

    def datastore_dir(self, host: str, datastore: str) -> Path:
        return self.host_dir(host) / "datastores" / datastore

    def datastores(self, host: str) -> list[str]:
        base = self.host_dir(host) / "datastores"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def inventory_path(self, host: str) -> Path:
        return self.host_dir(host) / "inventory.json"


def disk_stem(flat_file: str) -> str:
    """``alice-flat.vmdk`` -> ``alice``: the prefix of a disk's side files."""
    name = os.path.basename(flat_file)
    if name.endswith("-flat.vmdk"):
        return name[: -len("-flat.vmdk")]
    return os.path.splitext(name)[0]


def atomic_write_json(path: Path, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as indented JSON (:func:`~vmigrate_lib.atomicfile.write_atomic`)."""
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    """Parse a lab JSON file; a damaged one is a :class:`LabError`, not a traceback."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LabError(f"lab file {path} is damaged: {exc}", path=str(path)) from exc


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 120.0, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed), across processes.

    ``flock`` locks belong to the open file description, so two threads of one
    process that each open the lock file also exclude each other.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutExpired(
                        f"could not lock {what or path} within {timeout:.0f}s",
                        path=str(path),
                        timeout=timeout,
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
