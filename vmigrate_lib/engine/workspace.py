"""A migration's workspace: ``state.json``, the append-only ``journal.jsonl``, a lock.

Runbooks run on different days against the same workspace, so nothing lives
only in a process's memory: every decision the next run needs is in
``state.json`` (typed and checked by :mod:`.state`, written atomically), every
event in the journal (fsynced).  The folder is made 0700 and its files 0600
(or stricter, if the umask says so): they name hosts, VMs and change ids.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..atomicfile import write_all, write_atomic
from ..errors import OperationError, PartialWrite, WorkspaceMismatch
from ..lockholders import holders_said
from .state import STATE_VERSION, MigrationState, parse

__all__ = ["STATE_VERSION", "Journal", "Workspace", "journal_records"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def _write_failed(exc: PartialWrite) -> OperationError:
    return OperationError(
        f"could not write {exc.filename}: {exc.strerror} "
        f"({exc.written} of {exc.total} bytes written)",
        hint="free space or raise the file size limit on the workspace's filesystem, "
        "then re-run: it resumes", path=str(exc.filename), errno=exc.errno,
    )


def _write_all(fd: int, data: bytes, path: Path) -> None:
    """Write every byte (short writes continued); a write that fails is one clear error."""
    try:
        write_all(fd, data, path)
    except PartialWrite as exc:
        raise _write_failed(exc) from exc


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data, mode=FILE_MODE)
    except PartialWrite as exc:
        raise _write_failed(exc) from exc


class Journal:
    """Append-only JSON lines; each record gets a sequence number and a timestamp.

    A crash can leave a torn last line; the next append starts a new line first,
    so its record is never glued onto the torn one (and lost with it).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, type_: str, **record: Any) -> dict[str, Any]:
        entry = {"ts": time.time(), "type": type_, **record}
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # the last record was torn: end it first
                _write_all(fd, line, self.path)
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def records(self, type_: str | None = None) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for rec in journal_records(f):
                if type_ is None or rec.get("type") == type_:
                    yield rec


def journal_records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records of journal lines: a torn line (a crash mid-append) or one that is not a
    JSON object is skipped, as every reader of a journal must."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line.decode("utf-8", "replace"))
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            yield rec


class Workspace:
    """The folder of one migration.  Use as a context manager to hold its lock."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state_path = self.root / "state.json"
        self.journal = Journal(self.root / "journal.jsonl")
        self.evidence_dir = self.root / "evidence"
        #: remembered destination digests of hash-compare cycles (:mod:`.digestmap`)
        self.digests_dir = self.root / "digests"
        self._lock: IO[bytes] | None = None
        self._state: MigrationState | None = None
        #: what the last load found (a migrated version, an edit behind vmigrate's back)
        self.notes: list[str] = []
        #: guards ``state`` while disks copied in parallel record their checkpoints
        self.state_lock = threading.RLock()

    @property
    def exists(self) -> bool:
        return self.state_path.exists()

    @property
    def current(self) -> MigrationState | None:
        """The loaded state, or None when no migration claimed this workspace yet."""
        return self._state

    @property
    def state(self) -> MigrationState:
        """The loaded state of the migration that claimed this workspace."""
        if self._state is None:
            raise WorkspaceMismatch(
                f"workspace {self.root} is not claimed by a migration yet",
                hint="start the migration first (vmigrate sync, or engine.sync.start)",
                workspace=str(self.root),
            )
        return self._state

    def load(self) -> MigrationState | None:
        """Read and check ``state.json``; a bad file raises :class:`StateCorrupt` (exit 2)."""
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            self._state, self.notes = None, []
            return None
        except OSError as exc:
            raise WorkspaceMismatch(f"cannot read {self.state_path}: {exc.strerror}",
                                    hint="check the workspace's permissions",
                                    path=str(self.state_path)) from exc
        self._state, self.notes = parse(raw, str(self.state_path))
        return self._state

    def _mkdir(self) -> None:
        if not self.root.is_dir():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            self.root.mkdir(mode=DIR_MODE, exist_ok=True)

    def save(self) -> None:
        with self.state_lock:  # disks copied in parallel checkpoint from their threads
            state = self.state
            self._mkdir()
            state.updated = time.time()
            data = json.dumps(state.to_json(), indent=2, sort_keys=True).encode()
            _atomic_write(self.state_path, data)

    def init(self, identity: dict[str, Any]) -> MigrationState:
        """Create the state of a new migration, or check that it is this one."""
        state = self.load()
        if state is not None:
            for key, value in identity.items():
                if state.identity.get(key) != value:
                    raise WorkspaceMismatch(
                        f"workspace {self.root} belongs to another migration "
                        f"({key} is {state.identity.get(key)!r}, not {value!r})",
                        workspace=str(self.root),
                        field=key,
                    )
            self._journal_notes()
            return state
        state = self._state = MigrationState(migration_id=uuid.uuid4().hex[:12],
                                             identity=dict(identity))
        self.save()
        self.journal.append("migration_created", migration_id=state.migration_id, **identity)
        return state

    def _journal_notes(self) -> None:
        """Record once what the load found, and keep its marks (untrusted disks) saved."""
        if self.notes and self._lock is not None:
            for note in self.notes:
                self.journal.append("state_checked", detail=note)
            self.notes = []
            self.save()

    # --- lock -------------------------------------------------------------------------
    def lock(self) -> None:
        self._mkdir()
        fd = os.open(self.root / ".lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        f = os.fdopen(fd, "ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            f.close()
            raise WorkspaceMismatch(
                f"workspace {self.root} is in use by another vmigrate run"
                + holders_said(self.root / ".lock"),
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
        try:
            self.load()
        except BaseException:
            self.unlock()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()
