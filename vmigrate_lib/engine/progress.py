"""How long work shows progress: the engine reports, the faces display.

The engine calls a :class:`Reporter` with one :data:`Event` dataclass per kind of
step; the CLI plugs in a progress bar, the runbooks an ipywidgets dashboard,
headless runs one plain line per step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, TextIO

from ..modes import CycleStatus, DiskMode
from ..units import fmt_bytes, fmt_left, fmt_rate, fmt_secs
from .cycle_records import reconnects


@dataclass(frozen=True)
class CycleStarted:
    kind_: ClassVar[str] = "cycle_start"
    number: int
    kind: str  #: seed | delta | final


@dataclass(frozen=True)
class PhaseReached:
    """A named stage inside a cycle or a cutover (snapshot, certify, wait, rollback...)."""

    kind_: ClassVar[str] = "phase"
    phase: str
    detail: str = ""


@dataclass(frozen=True)
class DiskPlanned:
    """What one disk's copy will move, and why."""

    kind_: ClassVar[str] = "disk"
    key: int
    mode: DiskMode
    bytes: int
    extents: int
    reason: str = ""


@dataclass(frozen=True)
class CycleEnded:
    """A committed cycle; ``record`` is its journal record (what the audit tables read)."""

    kind_: ClassVar[str] = "cycle_end"
    record: Mapping[str, Any]


@dataclass(frozen=True)
class CycleFailed:
    kind_: ClassVar[str] = "cycle_failed"
    number: int
    status: CycleStatus
    error: str | None = None


@dataclass(frozen=True)
class CheckReported:
    """One preflight check's verdict."""

    kind_: ClassVar[str] = "check"
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class StepChanged:
    """A cutover step started or finished."""

    kind_: ClassVar[str] = "step"
    name: str
    status: Literal["started", "done"]
    seconds: float | None = None


@dataclass(frozen=True)
class WarningRaised:
    kind_: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True)
class PredictionMade:
    """The planner's prediction after a cycle; ``record`` as the journal keeps it."""

    kind_: ClassVar[str] = "prediction"
    record: Mapping[str, Any]


@dataclass(frozen=True)
class SyncFinished:
    kind_: ClassVar[str] = "sync_done"
    cycles: int
    converged: bool


@dataclass(frozen=True)
class CutoverFinished:
    """The cutover's outcome as the runbook shows it (``result``: status, downtime...)."""

    kind_: ClassVar[str] = "cutover_result"
    result: Mapping[str, Any]


#: Everything the engine (and the runbooks' glue) reports: one frozen dataclass per kind, so
#: a misspelled kind or field fails mypy where the event is made and where it is matched.
Event = (CycleStarted | PhaseReached | DiskPlanned | CycleEnded | CycleFailed | CheckReported
         | StepChanged | WarningRaised | PredictionMade | SyncFinished | CutoverFinished)


def event_info(ev: Event) -> dict[str, Any]:
    """An event's fields as one flat mapping (a record-carrying event: its record)."""
    if isinstance(ev, (CycleEnded, PredictionMade)):
        return dict(ev.record)
    if isinstance(ev, CutoverFinished):
        return dict(ev.result)
    return {f.name: getattr(ev, f.name) for f in fields(ev)}


class Reporter:
    """No-op base: subclasses override what they show."""

    def event(self, ev: Event, /) -> None:
        """A step happened (see :data:`Event`)."""

    def progress(self, done: int, total: int, rate: float) -> None:
        """Bytes of the current copy or hash pass."""


#: Events the runbooks report for their dashboards whose fact the engine has already put in
#: a line ("plan: predicted downtime ...", "cutover done: downtime ..."): one line each.
SAID_BY_THE_ENGINE = (PredictionMade, CutoverFinished)


class LineReporter(Reporter):
    """One plain line per step: for headless runs, logs and papermill output."""

    def __init__(self, stream: TextIO | None = None, min_interval: float = 5.0) -> None:
        self.stream = stream or sys.stdout
        self.min_interval = min_interval
        self._last = 0.0
        self._finished: tuple[int, int] | None = None

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=self.stream, flush=True)

    def event(self, ev: Event, /) -> None:
        if isinstance(ev, SAID_BY_THE_ENGINE):
            return
        self._line(format_event(ev))

    def progress(self, done: int, total: int, rate: float) -> None:
        now = time.monotonic()
        if self.min_interval and now - self._last < self.min_interval and done < total:
            return
        if done >= total and self._finished == (done, total):
            return  # one "100%" line per pass, however often the pass reports its end
        self._last = now
        self._finished = (done, total) if done >= total else None
        pct = 100.0 * done / total if total else 100.0
        self._line(f"  {pct:5.1f}%  {fmt_bytes(done)} of {fmt_bytes(total)}  {fmt_rate(rate)}"
                   f"{fmt_left(done, total, rate)}")


def format_event(ev: Event) -> str:
    """A readable sentence for an engine event."""
    if isinstance(ev, CycleStarted):
        return f"cycle {ev.number} ({ev.kind}) started"
    if isinstance(ev, PhaseReached):
        return f"  {ev.phase}: {ev.detail}".rstrip(": ")
    if isinstance(ev, DiskPlanned):
        return f"  disk {ev.key} {ev.mode}: {fmt_bytes(ev.bytes)} in {ev.extents} extents"
    if isinstance(ev, CycleEnded):
        info = ev.record
        cert = info.get("certify") or {}
        verdict = cert.get("result", "not certified")
        lost = reconnects(info.get("dataplane_events", ()))
        return (
            f"cycle {info.get('number')} ({info.get('kind')}) done in "
            f"{fmt_secs(info.get('duration', 0.0))}: changed {fmt_bytes(info.get('bytes_changed', 0))}, "
            f"sent {fmt_bytes(info.get('bytes_sent', 0))}, "
            f"{fmt_rate(info.get('throughput', 0.0))}, certify {verdict}"
            + (f", {lost} reconnect(s) to an agent" if lost else "")
        )
    if isinstance(ev, CheckReported):
        mark = "ok  " if ev.ok else "FAIL"
        return f"  [{mark}] {ev.name}: {ev.detail}"
    return _sentence(ev)


def _sentence(ev: Event) -> str:
    """The events a runbook or the cutover reports, as an operator reads them (not
    ``kind: key=value`` dumps)."""
    if isinstance(ev, CycleFailed):
        why = f": {ev.error}" if ev.error else ""
        return f"cycle {ev.number} {ev.status}{why}"
    if isinstance(ev, StepChanged):
        took = f" in {fmt_secs(ev.seconds)}" if ev.seconds is not None else ""
        return f"step {ev.name}: {ev.status}{took}"
    if isinstance(ev, WarningRaised):
        return f"warning: {ev.message}"
    if isinstance(ev, SyncFinished):
        verdict = "converged" if ev.converged else "not converged"
        return f"sync finished after {ev.cycles} cycle(s): {verdict}"
    info = event_info(ev)
    if isinstance(ev, PredictionMade) and "predicted_downtime" in info:
        verdict = "CONVERGED" if info.get("converged") else "not yet"
        return (f"prediction after cycle {info.get('cycle')}: downtime "
                f"{fmt_secs(float(info['predicted_downtime']))} vs budget "
                f"{fmt_secs(float(info.get('budget') or 0.0))}: {verdict}")
    if isinstance(ev, CutoverFinished) and "status" in info:
        down = info.get("downtime_s")
        pred = info.get("predicted_downtime_s")
        parts = [f"cutover attempt {info.get('attempt')}: {info['status']}"]
        if isinstance(down, (int, float)):
            parts.append(f"downtime {fmt_secs(float(down))}")
        if isinstance(pred, (int, float)):
            parts.append(f"predicted {fmt_secs(float(pred))}")
        return ", ".join(parts)
    details = ", ".join(f"{k}={_short(v)}" for k, v in info.items() if v is not None)
    return f"{ev.kind_}: {details}" if details else ev.kind_


def _short(value: Any) -> str:
    """Floats to a readable precision (4.1044244111 -> 4.1); everything else as is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
