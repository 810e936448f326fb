"""The journal's cycle records, typed: what the planner and the audit tables read.

A cycle record is journaled by :mod:`.cycle` and read back, possibly written by an
older vmigrate, so reading is lenient (a missing or wrong-typed number reads as 0)
where ``state.json`` (:mod:`.state`) is strict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _num(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return int(value)


#: A disk's ``reason`` when it is hash-compared because the operator chose ``hash``.
HASH_CHOSEN = "sync.change_tracking=hash"


@dataclass
class CycleDisk:
    """What one cycle did to one disk."""

    key: int
    mode: str  #: full | tracked | hash
    reason: str = ""
    bytes_changed: int = 0
    extents: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0
    bytes_zero: int = 0
    resumed_from: int = 0
    change_id: str | None = None

    @property
    def hash_by_choice(self) -> bool:
        return self.mode == "hash" and self.reason == HASH_CHOSEN

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CycleDisk:
        cid = data.get("change_id")
        return cls(
            key=_int(data.get("key")), mode=str(data.get("mode", "")),
            reason=str(data.get("reason", "")), bytes_changed=_int(data.get("bytes_changed")),
            extents=_int(data.get("extents")), bytes_read=_int(data.get("bytes_read")),
            bytes_sent=_int(data.get("bytes_sent")), bytes_zero=_int(data.get("bytes_zero")),
            resumed_from=_int(data.get("resumed_from")),
            change_id=cid if isinstance(cid, str) else None,
        )


#: Journal record types that carry a cycle.
CYCLE_RECORD_TYPES = ("cycle", "cycle_failed")


@dataclass
class CycleRecord:
    """One cycle as the journal keeps it (``cycle`` or ``cycle_failed``); the planner,
    the audit tables and the cutover read these fields, never the raw keys."""

    number: int
    kind: str  #: seed | delta | final
    status: str = "ok"  #: ok | failed | interrupted
    started: float = 0.0
    duration: float = 0.0
    interval: float | None = None  #: seconds since the previous cycle's snapshot
    snapshot_at: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    disks: list[CycleDisk] = field(default_factory=list)
    certify_mode: str = ""
    certify: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False
    bytes_changed: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0
    bytes_zero: int = 0
    extents: int = 0
    throughput: float = 0.0
    #: the data plane's reconnects, resumed streams and direct-mode decision in this cycle
    dataplane_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reconnects(self) -> int:
        return reconnects(self.dataplane_events)

    @property
    def certify_result(self) -> str:
        return str(self.certify.get("result", ""))

    @property
    def tracked(self) -> bool:
        """Every disk copied tracked changes: its bytes are writes per interval."""
        return all(d.mode == "tracked" for d in self.disks)

    @property
    def rated(self) -> bool:
        """Its bytes are the guest's writes over its interval: tracked changes exactly, or
        blocks hash-compared because ``sync.change_tracking`` is ``hash`` (the blocks
        written since the last cycle, block-rounded: an upper bound).  Not a seed's, and
        not a hash-compare forced by a doubt (after Bob ran it also holds his writes)."""
        return all(d.mode == "tracked" or d.hash_by_choice for d in self.disks)

    @property
    def hash_by_choice(self) -> bool:
        """Some disk is hash-compared every cycle (the final one too, with Alice off)."""
        return any(d.hash_by_choice for d in self.disks)

    def phase(self, name: str) -> float:
        return self.phases.get(name, 0.0)

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> CycleRecord | None:
        """A journal record as a cycle; None when it is not one.

        Journals of every vintage are evidence, so a missing or odd field reads
        as its default instead of failing the whole audit.  A record without a
        ``type`` but with a ``kind`` is a cycle (as :func:`run_cycle` returns it).
        """
        t = rec.get("type")
        if not (t in CYCLE_RECORD_TYPES or (t is None and "kind" in rec)):
            return None
        phases = rec.get("phases") if isinstance(rec.get("phases"), dict) else {}
        disks = rec.get("disks") if isinstance(rec.get("disks"), list) else []
        cert = rec.get("certify")
        interval, snap = rec.get("interval"), rec.get("snapshot_at")
        events = rec.get("dataplane_events")
        events = events if isinstance(events, list) else []
        return cls(
            number=_int(rec.get("number")), kind=str(rec.get("kind", "")),
            status=str(rec.get("status", "failed" if t == "cycle_failed" else "ok")),
            started=_num(rec.get("started")), duration=_num(rec.get("duration")),
            interval=None if interval is None else _num(interval),
            snapshot_at=None if snap is None else _num(snap),
            phases={str(k): _num(v) for k, v in (phases or {}).items()},
            disks=[CycleDisk.from_json(d) for d in (disks or []) if isinstance(d, dict)],
            certify_mode=str(rec.get("certify_mode", "")),
            certify=dict(cert) if isinstance(cert, dict) else {},
            resumed=bool(rec.get("resumed", False)),
            bytes_changed=_int(rec.get("bytes_changed")), bytes_read=_int(rec.get("bytes_read")),
            bytes_sent=_int(rec.get("bytes_sent")), bytes_zero=_int(rec.get("bytes_zero")),
            extents=_int(rec.get("extents")), throughput=_num(rec.get("throughput")),
            dataplane_events=[e for e in events if isinstance(e, dict)],
        )


def reconnects(events: Iterable[Mapping[str, Any]]) -> int:
    """Connections to an agent lost and made again, among a cycle's data-plane events."""
    return sum(e.get("event") == "reconnect" for e in events)


def cycle_records(records: Iterable[Mapping[str, Any]]) -> list[CycleRecord]:
    """The cycles among journal records, in journal order."""
    return [c for c in (CycleRecord.from_json(r) for r in records) if c is not None]
