"""A migration's workspace: ``state.json``, the append-only ``journal.jsonl``, a lock.

Runbooks run on different days against the same workspace, so nothing lives
only in a process's memory: every decision the next run needs is in
``state.json`` (written atomically), every event in the journal (fsynced).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import WorkspaceMismatch

STATE_VERSION = 1


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Journal:
    """Append-only JSON lines; each record gets a sequence number and a timestamp."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, type_: str, **record: Any) -> dict[str, Any]:
        entry = {"ts": time.time(), "type": type_, **record}
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def records(self, type_: str | None = None) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash: ignore it
                if type_ is None or rec.get("type") == type_:
                    yield rec


class Workspace:
    """The folder of one migration.  Use as a context manager to hold its lock."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state_path = self.root / "state.json"
        self.journal = Journal(self.root / "journal.jsonl")
        self.evidence_dir = self.root / "evidence"
        self._lock: IO[bytes] | None = None
        self.state: dict[str, Any] = {}
        #: guards ``state`` while disks copied in parallel record their checkpoints
        self.state_lock = threading.RLock()

    @property
    def exists(self) -> bool:
        return self.state_path.exists()

    def load(self) -> dict[str, Any]:
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        else:
            self.state = {}
        return self.state

    def save(self) -> None:
        with self.state_lock:  # disks copied in parallel checkpoint from their threads
            self.root.mkdir(parents=True, exist_ok=True)
            self.state["updated"] = time.time()
            data = json.dumps(self.state, indent=2, sort_keys=True).encode()
            _atomic_write(self.state_path, data)

    def init(self, identity: dict[str, Any]) -> dict[str, Any]:
        """Create the state of a new migration, or check that it is this one."""
        self.load()
        if self.state:
            for key, value in identity.items():
                if self.state.get("identity", {}).get(key) != value:
                    raise WorkspaceMismatch(
                        f"workspace {self.root} belongs to another migration "
                        f"({key} is {self.state['identity'].get(key)!r}, not {value!r})",
                        workspace=str(self.root),
                        field=key,
                    )
            return self.state
        self.state = {
            "version": STATE_VERSION,
            "migration_id": uuid.uuid4().hex[:12],
            "identity": identity,
            "created": time.time(),
            "cycles": 0,
            "disks": {},
            "in_progress": None,
        }
        self.save()
        self.journal.append("migration_created", migration_id=self.state["migration_id"], **identity)
        return self.state

    # --- lock -------------------------------------------------------------------------
    def lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        f = open(self.root / ".lock", "ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            f.close()
            raise WorkspaceMismatch(
                f"workspace {self.root} is in use by another vmigrate run",
                hint="wait for it to finish (vmigrate status shows it), or stop it first",
                workspace=str(self.root),
            ) from exc
        self._lock = f

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Workspace:
        self.lock()
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()
