"""The typed, versioned, checked content of ``state.json``.

``state.json`` is the contract between runs on different days and between
versions of vmigrate, so its shape lives here and nowhere else:

* :class:`MigrationState` - identity, cycle count, the disks, the cycle in
  progress, the cutover record;
* :class:`DiskState` - one source disk and its copy (identified by its key
  *and* its file: a reused key with another file is a new disk);
* :class:`InProgress` - the cycle being copied: snapshot, change ids,
  durable checkpoints (the resume rule's S0 and X);
* :class:`CutoverRecord` (in ``cutover_record``, re-exported here) - the cutover, step
  by step; ``state_fields`` reads the JSON, naming each field.

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
from .cutover_record import CutoverRecord, StepRecord
from .state_fields import FieldReader, bad_state

__all__ = ["STATE_VERSION", "CutoverRecord", "DiskState", "InProgress", "MigrationState",
           "StepRecord", "canonical", "digest_of", "disk_digest", "parse"]

#: The schema written by this code.  1: vmigrate 0.x (no digest, never checked).
STATE_VERSION = 2


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes the digests are computed over: sorted keys, no whitespace."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest_of(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()



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
    #: the copy's modification time as the last committed cycle left it: a later one means
    #: something else wrote it (the next cycle then proves it by reading it)
    dest_mtime_ns: int | None = None

    def is_disk(self, key: int, path: str) -> bool:
        """The same disk: same key, and the same file (or no file recorded yet)."""
        return self.key == key and (not self.path or self.path == path)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "key": self.key, "path": self.path, "dest_path": self.dest_path,
            "capacity": self.capacity, "change_id": self.change_id, "seeded": self.seeded,
            "last_cycle": self.last_cycle,
        }
        for name in ("untrusted", "recheck", "removed", "dest_mtime_ns"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body

    @classmethod
    def from_json(cls, data: object, key: str, path: str) -> DiskState:
        r = FieldReader(data, f"disks[{key}]", path)
        try:
            k = int(key)
        except ValueError:
            raise bad_state(path, f"disk key {key!r} is not a number") from None
        if r.int_("key", k) != k:
            raise bad_state(path, f"disks[{key}].key is {r.data.get('key')!r}, not {k}")
        untrusted = r.data.get("untrusted")
        return cls(
            key=k, path=r.str_("path"), dest_path=r.str_("dest_path"),
            capacity=r.int_("capacity", None), change_id=r.str_("change_id", None),
            seeded=r.bool_("seeded"), last_cycle=r.int_("last_cycle"),
            # version 1 wrote True in places; keep the mark, give it words
            untrusted=(None if untrusted is None else
                       "marked untrusted" if untrusted is True else r.str_("untrusted", None)),
            recheck=r.str_("recheck", None), removed=r.float_("removed", None),
            dest_mtime_ns=r.int_("dest_mtime_ns", None),
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
        r = FieldReader(data, "in_progress", path)
        ids = r.obj("snap_change_ids") or {}
        cks = r.obj("checkpoints") or {}
        for k, v in ids.items():
            if v is not None and not isinstance(v, str):
                raise bad_state(path, f"in_progress.snap_change_ids[{k}] is {v!r}, not a string")
        for k, v in cks.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad_state(path, f"in_progress.checkpoints[{k}] is {v!r}, not an offset")
        return cls(
            number=r.int_("number"), kind=r.str_("kind"), snapshot_id=str(r.data.get(
                "snapshot_id", "")), snapshot_name=r.str_("snapshot_name"),
            snap_change_ids=dict(ids), checkpoints={str(k): int(v) for k, v in cks.items()},
            started=r.float_("started"), committed=r.bool_("committed"),
            snapshot_removed=r.bool_("snapshot_removed"),
        )



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
            cur.dest_mtime_ns = d.dest_mtime_ns
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
        r = FieldReader(data, "state", path)
        version = r.data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise bad_state(path, f"version is {version!r}, not a schema number")
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
            raise bad_state(path, "migration_id is missing")
        identity = r.obj("identity")
        if identity is None:
            raise bad_state(path, "identity is missing")
        disks_raw = r.obj("disks") or {}
        disks = {int(k): DiskState.from_json(v, k, path) for k, v in disks_raw.items()
                 if _key_ok(k, path)}
        retired_raw = r.data.get("retired") or []
        if not isinstance(retired_raw, list):
            raise bad_state(path, f"retired is {retired_raw!r}, not a list")
        retired = [DiskState.from_json(v, str(FieldReader(v, "retired[]", path).int_("key")), path)
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
        raise bad_state(path, f"disk key {key!r} is not a number")
    return True


def parse(raw: bytes, path: str) -> tuple[MigrationState, list[str]]:
    """Decode ``state.json``'s bytes: empty, torn or non-JSON is a one-line StateCorrupt."""
    if not raw.strip():
        raise bad_state(path, "the file is empty (a crash while it was written, or a copy that failed)")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_state(path, f"not JSON ({exc.__class__.__name__} at byte "
                   f"{getattr(exc, 'pos', getattr(exc, 'start', '?'))}): truncated or "
                   "edited") from exc
    return MigrationState.from_json(data, path)
