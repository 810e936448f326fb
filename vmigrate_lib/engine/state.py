"""The typed, versioned, checked content of ``state.json``.

``state.json`` is the contract between runs on different days and between
versions of vmigrate, so its shape lives here and nowhere else:

* :class:`MigrationState` - identity, cycle count, the disks, the cycle in
  progress, the cutover record;
* :class:`DiskState` - one source disk and its copy (identified by its key
  *and* its file: a reused key with another file is a new disk);
* :class:`InProgress` - the cycle being copied: snapshot, change ids,
  durable checkpoints (the resume rule's S0 and X).

Loading checks the schema ``version`` (version 1, written by vmigrate 0.x
without a digest, is migrated; a newer one is refused) and every field's type;
a bad file is a :class:`StateCorrupt` (exit 2, one line) instead of a traceback.
Saving stores a SHA-256 of the canonical body beside it (``digest``, per disk
too): a file edited behind vmigrate's back loads, but the disks it touched are
marked untrusted, so the next cycle hash-compares them instead of believing a
hand-made checkpoint or change id.  The digest detects edits by hand or by
other tools; it is no defence against someone who runs this code.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import StateCorrupt
from ..modes import CUTOVER_STATUSES, STEP_STATUSES, CutoverStatus, StepStatus, W

#: The schema written by this code.  1: vmigrate 0.x (no digest, never checked).
STATE_VERSION = 2


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes the digests are computed over: sorted keys, no whitespace."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest_of(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


class _Reader:
    """Typed access to one JSON object, naming the field in every complaint."""

    def __init__(self, data: object, where: str, path: str) -> None:
        if not isinstance(data, dict):
            raise _bad(path, f"{where} is {type(data).__name__}, not an object")
        self.data: dict[str, Any] = data
        self.where, self.path = where, path

    def _get(self, key: str, types: tuple[type, ...], default: object, name: str) -> Any:
        value = self.data.get(key, default)
        if value is None and default is None:
            return None
        # bool is an int in Python; a JSON true is never a count or an offset
        if isinstance(value, bool) and bool not in types:
            value = _WRONG
        if not isinstance(value, types):
            raise _bad(self.path, f"{self.where}.{key} is {value!r}, not {name}")
        return value

    def str_(self, key: str, default: str | None = "") -> Any:
        return self._get(key, (str,), default, "a string")

    def word_(self, key: str, words: tuple[W, ...], default: W | None = None) -> W:
        """One of ``words`` (a status): anything else is a corrupt state, said in one line."""
        value = self._get(key, (str,), default, "a string")
        for word in words:
            if value == word:
                return word
        raise _bad(self.path, f"{self.where}.{key} is {value!r}, not one of {', '.join(words)}")

    def int_(self, key: str, default: int | None = 0) -> Any:
        return self._get(key, (int,), default, "an integer")

    def float_(self, key: str, default: float | None = 0.0) -> Any:
        value = self._get(key, (int, float), default, "a number")
        return None if value is None else float(value)

    def bool_(self, key: str, default: bool = False) -> bool:
        return bool(self._get(key, (bool,), default, "true or false"))

    def obj(self, key: str) -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _bad(self.path, f"{self.where}.{key} is {value!r}, not an object")
        return value


_WRONG = object()


def _bad(path: str, what: str) -> StateCorrupt:
    return StateCorrupt(
        f"{path} is not a valid vmigrate state: {what}",
        hint="restore it from a backup; or start afresh: move the "
        "workspace away, remove the destination folder (or choose another dest_name), run "
        "vmigrate sync (a new seed)",
        path=path, problem=what,
    )


@dataclass
class DiskState:
    """One source disk (key + file) and its copy on the destination."""

    key: int
    path: str = ""  #: the source disk's file: with ``key``, what identifies the disk
    dest_path: str = ""
    capacity: int | None = None  #: as the last committed cycle left the copy
    change_id: str | None = None  #: the last committed change id (None: hash next time)
    seeded: bool = False
    last_cycle: int = 0
    untrusted: str | None = None  #: why the copy is not proven (certify failed, state edited)
    recheck: str | None = None  #: why this disk is hash-compared next cycle (grown, returned)
    removed: float | None = None  #: when the disk left the source VM (its copy is kept)

    def is_disk(self, key: int, path: str) -> bool:
        """The same disk: same key, and the same file (or no file recorded yet)."""
        return self.key == key and (not self.path or self.path == path)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "key": self.key, "path": self.path, "dest_path": self.dest_path,
            "capacity": self.capacity, "change_id": self.change_id, "seeded": self.seeded,
            "last_cycle": self.last_cycle,
        }
        for name in ("untrusted", "recheck", "removed"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body

    @classmethod
    def from_json(cls, data: object, key: str, path: str) -> DiskState:
        r = _Reader(data, f"disks[{key}]", path)
        try:
            k = int(key)
        except ValueError:
            raise _bad(path, f"disk key {key!r} is not a number") from None
        if r.int_("key", k) != k:
            raise _bad(path, f"disks[{key}].key is {r.data.get('key')!r}, not {k}")
        untrusted = r.data.get("untrusted")
        return cls(
            key=k, path=r.str_("path"), dest_path=r.str_("dest_path"),
            capacity=r.int_("capacity", None), change_id=r.str_("change_id", None),
            seeded=r.bool_("seeded"), last_cycle=r.int_("last_cycle"),
            # version 1 wrote True in places; keep the mark, give it words
            untrusted=(None if untrusted is None else
                       "marked untrusted" if untrusted is True else r.str_("untrusted", None)),
            recheck=r.str_("recheck", None), removed=r.float_("removed", None),
        )


@dataclass
class InProgress:
    """The cycle being copied: what a killed run leaves for the next one to resume."""

    number: int
    kind: str
    snapshot_id: str
    snapshot_name: str
    snap_change_ids: dict[str, str | None] = field(default_factory=dict)  #: S0 per disk
    checkpoints: dict[str, int] = field(default_factory=dict)  #: X per disk (durable bytes)
    started: float = 0.0
    committed: bool = False
    snapshot_removed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "kind": self.kind, "snapshot_id": self.snapshot_id,
            "snapshot_name": self.snapshot_name, "snap_change_ids": dict(self.snap_change_ids),
            "checkpoints": dict(self.checkpoints), "started": self.started,
            "committed": self.committed, "snapshot_removed": self.snapshot_removed,
        }

    @classmethod
    def from_json(cls, data: object, path: str) -> InProgress:
        r = _Reader(data, "in_progress", path)
        ids = r.obj("snap_change_ids") or {}
        cks = r.obj("checkpoints") or {}
        for k, v in ids.items():
            if v is not None and not isinstance(v, str):
                raise _bad(path, f"in_progress.snap_change_ids[{k}] is {v!r}, not a string")
        for k, v in cks.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise _bad(path, f"in_progress.checkpoints[{k}] is {v!r}, not an offset")
        return cls(
            number=r.int_("number"), kind=r.str_("kind"), snapshot_id=str(r.data.get(
                "snapshot_id", "")), snapshot_name=r.str_("snapshot_name"),
            snap_change_ids=dict(ids), checkpoints={str(k): int(v) for k, v in cks.items()},
            started=r.float_("started"), committed=r.bool_("committed"),
            snapshot_removed=r.bool_("snapshot_removed"),
        )


@dataclass
class StepRecord:
    """One cutover step: how often it ran, when, and how it ended."""

    status: StepStatus = "pending"
    runs: int = 0
    start: float | None = None
    end: float | None = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "runs": self.runs, "start": self.start,
                                "end": self.end}
        if self.error is not None:
            body["error"] = self.error
        return body

    @classmethod
    def from_json(cls, data: object, where: str, path: str) -> StepRecord:
        r = _Reader(data, where, path)
        return cls(status=r.word_("status", STEP_STATUSES, "pending"), runs=r.int_("runs"),
                   start=r.float_("start", None), end=r.float_("end", None),
                   error=r.obj("error"))


#: Fields of the cutover record that are timestamps (epoch seconds) or None.
_CO_TIMES = ("started", "ended", "sync_age", "shutdown_requested_at", "alice_off_at",
             "register_started_at", "bob_powered_on_at", "bob_ready_at")
_CO_FLAGS = ("hard_poweroff", "registering", "registered", "bob_powered_on")
_CO_TEXTS = ("reason", "operator", "certify", "bob_uuid", "bob_ip")
_CO_OBJECTS = ("options", "prediction", "measured", "go", "final_cycle", "retire")


@dataclass
class CutoverRecord:
    """One cutover attempt, step by step: what a killed cutover resumes from."""

    attempt: int
    status: CutoverStatus
    step: str = ""
    steps: dict[str, StepRecord] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    reason: str | None = None
    operator: str | None = None
    options: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  #: earlier attempts
    warnings: list[str] = field(default_factory=list)
    prediction: dict[str, Any] | None = None
    go: dict[str, Any] | None = None
    sync_age: float | None = None
    shutdown_requested_at: float | None = None
    hard_poweroff: bool = False
    alice_off_at: float | None = None
    cycles_before_final: int | None = None
    final_cycle: dict[str, Any] | None = None
    certify: str | None = None
    files_copied: list[str] = field(default_factory=list)
    register_started_at: float | None = None
    registering: bool = False
    registered: bool = False
    bob_uuid: str | None = None
    bob_powered_on: bool = False
    bob_powered_on_at: float | None = None  #: when vmigrate asked for Bob's power-on
    bob_ready_at: float | None = None
    bob_ip: str | None = None
    probes: list[dict[str, Any]] | None = None
    measured: dict[str, Any] | None = None
    #: cutover.identity retire-source: the source's RetirePlan (saved before anything
    #: changes) and ``state``: planned | retired | restored
    retire: dict[str, Any] | None = None

    def step_record(self, name: str) -> StepRecord:
        return self.steps.setdefault(name, StepRecord())

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "attempt": self.attempt, "status": self.status, "step": self.step,
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "history": list(self.history), "warnings": list(self.warnings),
            "files_copied": list(self.files_copied),
            "cycles_before_final": self.cycles_before_final, "probes": self.probes,
        }
        for name in (*_CO_TIMES, *_CO_FLAGS, *_CO_TEXTS, *_CO_OBJECTS):
            body[name] = getattr(self, name)
        return body

    @classmethod
    def from_json(cls, data: object, path: str) -> CutoverRecord:
        r = _Reader(data, "cutover", path)
        steps = r.obj("steps") or {}
        lists: dict[str, list[Any] | None] = {}
        for name in ("history", "warnings", "files_copied", "probes"):
            value = r.data.get(name)
            if value is not None and not isinstance(value, list):
                raise _bad(path, f"cutover.{name} is {value!r}, not a list")
            lists[name] = value
        rec = cls(
            attempt=r.int_("attempt"), status=r.word_("status", CUTOVER_STATUSES), step=r.str_("step", "") or "",
            steps={str(k): StepRecord.from_json(v, f"cutover.steps[{k}]", path)
                   for k, v in steps.items()},
            history=list(lists["history"] or []),
            warnings=[str(w) for w in lists["warnings"] or []],
            files_copied=[str(f) for f in lists["files_copied"] or []],
            probes=lists["probes"], cycles_before_final=r.int_("cycles_before_final", None),
        )
        for n in _CO_TIMES:
            setattr(rec, n, r.float_(n, None))
        for n in _CO_FLAGS:
            setattr(rec, n, r.bool_(n))
        for n in _CO_TEXTS:
            setattr(rec, n, r.str_(n, None))
        for n in _CO_OBJECTS:
            setattr(rec, n, r.obj(n))
        return rec


@dataclass
class MigrationState:
    """Everything the next run needs, typed; mutated only through the named methods."""

    migration_id: str
    identity: dict[str, Any]
    created: float = field(default_factory=time.time)
    updated: float = 0.0
    cycles: int = 0
    seeded: bool = False
    last_snapshot_at: float | None = None
    last_cycle_kind: str | None = None
    dest: dict[str, str] = field(default_factory=dict)  #: datastore, folder
    disks: dict[int, DiskState] = field(default_factory=dict)
    #: copies of removed disks whose key a new disk reused: kept, never written again
    retired: list[DiskState] = field(default_factory=list)
    in_progress: InProgress | None = None
    cutover: CutoverRecord | None = None

    # --- reading --------------------------------------------------------------------
    def disk(self, key: int, path: str) -> DiskState | None:
        """The state of the disk with this key *and* file; None for a new disk."""
        ds = self.disks.get(key)
        return ds if ds is not None and ds.is_disk(key, path) else None

    def untrusted(self) -> dict[int, str]:
        return {k: d.untrusted for k, d in self.disks.items() if d.untrusted}

    def kept_copies(self) -> dict[str, int]:
        """Destination files that hold a removed disk's copy: dest path -> disk key."""
        kept = {d.dest_path: d.key for d in self.retired if d.dest_path}
        kept.update({d.dest_path: k for k, d in self.disks.items()
                     if d.removed is not None and d.dest_path})
        return kept

    # --- changing -------------------------------------------------------------------
    def disk_entry(self, key: int, path: str) -> DiskState:
        """The disk's state, created if new; a reused key with another file retires the old."""
        ds = self.disks.get(key)
        if ds is not None and not ds.is_disk(key, path):
            self.retired.append(ds)
            ds = None
        if ds is None:
            ds = self.disks[key] = DiskState(key=key, path=path)
        return ds

    def begin_cycle(self, ip: InProgress) -> None:
        self.in_progress = ip

    def checkpoint(self, key: int, offset: int) -> None:
        """Record that the destination holds disk ``key`` durably up to ``offset``."""
        if self.in_progress is None:
            raise RuntimeError("checkpoint outside a cycle")
        self.in_progress.checkpoints[str(key)] = offset

    def mark_untrusted(self, key: int, why: str) -> None:
        """The copy of disk ``key`` is not proven: the next cycle hash-compares it."""
        ds = self.disks.get(key)
        if ds is None:
            ds = self.disks[key] = DiskState(key=key)
        ds.untrusted = why

    def commit_cycle(self, number: int, kind: str, snapshot_at: float,
                     disks: list[DiskState]) -> None:
        """A cycle copied and certified: store its change ids; the marks are cleared."""
        for d in disks:
            cur = self.disk_entry(d.key, d.path)
            cur.dest_path, cur.capacity, cur.change_id = d.dest_path, d.capacity, d.change_id
            cur.seeded, cur.last_cycle = True, number
            cur.untrusted = cur.recheck = None
        self.cycles = number
        self.seeded = True
        self.last_snapshot_at = snapshot_at
        self.last_cycle_kind = kind
        if self.in_progress is not None:
            self.in_progress.committed = True

    # --- JSON -----------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        """The JSON body without digests (what the digests cover)."""
        return {
            "version": STATE_VERSION, "migration_id": self.migration_id,
            "identity": dict(self.identity), "created": self.created, "updated": self.updated,
            "cycles": self.cycles, "seeded": self.seeded,
            "last_snapshot_at": self.last_snapshot_at, "last_cycle_kind": self.last_cycle_kind,
            "dest": dict(self.dest),
            "disks": {str(k): d.to_json() for k, d in sorted(self.disks.items())},
            "retired": [d.to_json() for d in self.retired],
            "in_progress": None if self.in_progress is None else self.in_progress.to_json(),
            "cutover": None if self.cutover is None else self.cutover.to_json(),
        }

    def to_json(self) -> dict[str, Any]:
        body = self.body()
        body["disk_digests"] = {k: disk_digest(body, k) for k in body["disks"]}
        body["digest"] = digest_of(body)
        return body

    @classmethod
    def from_json(cls, data: object, path: str) -> tuple[MigrationState, list[str]]:
        """Parse, migrate and check a loaded file; return the state and what was found.

        The notes say what a reader must know: a migrated version, an edit
        behind vmigrate's back (and the disks it touched, now untrusted).
        """
        r = _Reader(data, "state", path)
        version = r.data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _bad(path, f"version is {version!r}, not a schema number")
        if version > STATE_VERSION:
            raise StateCorrupt(
                f"{path} was written by a newer vmigrate (state version {version}; this one "
                f"reads up to {STATE_VERSION})",
                hint="run the vmigrate that wrote it (pip show vmigrate on that machine)",
                path=path, version=version,
            )
        notes: list[str] = []
        if version == 1:
            notes.append(f"state version 1 migrated to {STATE_VERSION}")
        mid = r.str_("migration_id", None)
        if not mid:
            raise _bad(path, "migration_id is missing")
        identity = r.obj("identity")
        if identity is None:
            raise _bad(path, "identity is missing")
        disks_raw = r.obj("disks") or {}
        disks = {int(k): DiskState.from_json(v, k, path) for k, v in disks_raw.items()
                 if _key_ok(k, path)}
        retired_raw = r.data.get("retired") or []
        if not isinstance(retired_raw, list):
            raise _bad(path, f"retired is {retired_raw!r}, not a list")
        retired = [DiskState.from_json(v, str(_Reader(v, "retired[]", path).int_("key")), path)
                   for v in retired_raw]
        ip_raw = r.data.get("in_progress")
        co = r.data.get("cutover")
        dest = r.obj("dest") or {}
        state = cls(
            migration_id=mid, identity=identity, created=r.float_("created"),
            updated=r.float_("updated"), cycles=r.int_("cycles"), seeded=r.bool_("seeded"),
            last_snapshot_at=r.float_("last_snapshot_at", None),
            last_cycle_kind=r.str_("last_cycle_kind", None),
            dest={str(k): str(v) for k, v in dest.items()}, disks=disks, retired=retired,
            in_progress=None if ip_raw is None else InProgress.from_json(ip_raw, path),
            cutover=None if co is None else CutoverRecord.from_json(co, path),
        )
        if version >= 2:
            notes += state._check_digests(r.data)
        return state, notes

    def _check_digests(self, data: dict[str, Any]) -> list[str]:
        """Compare the stored digests with the content; mark the disks an edit touched."""
        stored = data.get("digest")
        body = {k: v for k, v in data.items() if k not in ("digest", "disk_digests")}
        if stored == digest_of({**body, "disk_digests": data.get("disk_digests")}):
            return []
        raw = data.get("disk_digests")
        per_disk: dict[str, Any] = raw if isinstance(raw, dict) else {}
        touched = [k for k in self.disks if per_disk.get(str(k)) != disk_digest(body, str(k))]
        if not touched:  # the edit is outside the disks: nothing proves any copy
            touched = list(self.disks)
        for k in touched:
            self.mark_untrusted(k, "state.json was changed outside vmigrate")
        return [f"state.json was changed outside vmigrate (digest mismatch); disk(s) "
                f"{', '.join(str(k) for k in touched) or 'none'} will be hash-compared"]


def disk_digest(body: Mapping[str, Any], key: str) -> str:
    """What one disk's copy depends on: its state and its resume point, if any."""
    ip = body.get("in_progress") or {}
    part = {
        "disk": (body.get("disks") or {}).get(key),
        "checkpoint": (ip.get("checkpoints") or {}).get(key) if isinstance(ip, dict) else None,
        "s0": (ip.get("snap_change_ids") or {}).get(key) if isinstance(ip, dict) else None,
    }
    return digest_of(part)


def _key_ok(key: str, path: str) -> bool:
    if not key.lstrip("-").isdigit():
        raise _bad(path, f"disk key {key!r} is not a number")
    return True


def parse(raw: bytes, path: str) -> tuple[MigrationState, list[str]]:
    """Decode ``state.json``'s bytes: empty, torn or non-JSON is a one-line StateCorrupt."""
    if not raw.strip():
        raise _bad(path, "the file is empty (a crash while it was written, or a copy that failed)")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"not JSON ({exc.__class__.__name__} at byte "
                   f"{getattr(exc, 'pos', getattr(exc, 'start', '?'))}): truncated or "
                   "edited") from exc
    return MigrationState.from_json(data, path)
