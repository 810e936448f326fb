"""What the guest dirties: tracked bytes as a function of the window, from the journal.

Change tracking counts 64 KiB grains, so a 4 KiB write dirties 64 KiB and a grain
written twice counts once: the bytes of a window grow fast at first (every write
finds a clean grain) and slower later (a hot set is dirtied whole within seconds).
A rate taken from long intervals therefore under-predicts a short final window.
The model is a line, bytes(W) = working set + rate x W, fitted over windows that
differ; the short windows come from earlier cutovers' final cycles (a rehearsal
measures one: the writes from the last snapshot until Alice was off), the long
ones from delta cycles.  When the windows do not differ, the plain rate (bytes per
second of interval) is all there is.

The trend says whether the cycles are catching up: the deltas of the last
:data:`TREND_CYCLES` back-to-back delta cycles, and whether they still shrink.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .cycle_records import CycleRecord

#: Delta cycles the plain rate is averaged over (recent ones describe the cutover best).
RATE_WINDOW = 3
#: Delta cycles the line is fitted over (plus the latest measured final window).
FIT_WINDOW = 6
#: Back-to-back delta cycles that must shrink for the sync to be catching up.
TREND_CYCLES = 3
#: The deltas shrink when the last of :data:`TREND_CYCLES` is below this share of the first.
SHRINKING = 0.9


@dataclass(frozen=True)
class DirtyModel:
    """Tracked bytes of a window: ``working_set + rate x window`` (bytes, bytes/s)."""

    rate: float
    working_set: float = 0.0
    source: str = "none"  #: fit | rate | none
    points: tuple[tuple[float, float], ...] = ()  #: (window s, bytes) it was made from

    def bytes_in(self, window: float) -> float:
        return self.working_set + self.rate * max(0.0, window)


@dataclass(frozen=True)
class Trend:
    """The last back-to-back delta cycles: bytes and intervals, and whether they shrink."""

    deltas: tuple[float, ...] = ()
    intervals: tuple[float, ...] = ()

    @property
    def stalled(self) -> bool:
        """:data:`TREND_CYCLES` deltas in a row and the last not clearly smaller than the
        first: no progress over those cycles (one smaller delta among noisy ones is none)."""
        d = self.deltas[-TREND_CYCLES:]
        return len(d) >= TREND_CYCLES and d[-1] >= SHRINKING * d[0]


def _tracked_deltas(cyc: Sequence[CycleRecord]) -> list[CycleRecord]:
    # tracked and hash-compared deltas both carry the writes of their interval (a hash
    # cycle's at block granularity); a seed's or full copy's bytes carry no rate
    return [c for c in cyc if c.kind == "delta" and (c.interval or 0) > 0 and c.rated]


def final_windows(records: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(seconds of guest writes, bytes) of each final cycle whose window the journal shows:
    from the snapshot before it to the end of the cutover's shutdown step (Alice off)."""
    out: list[tuple[float, float]] = []
    off_at: float | None = None
    for rec in records:
        if rec.get("type") == "step" and rec.get("name") == "shutdown" \
                and rec.get("status") == "done":
            end = rec.get("end")
            off_at = float(end) if isinstance(end, (int, float)) else None
            continue
        c = CycleRecord.from_json(rec)
        if c is None or c.kind != "final" or not c.ok or not c.rated or off_at is None:
            continue
        if c.snapshot_at and c.interval and c.interval > 0:
            window = off_at - (c.snapshot_at - c.interval)
            if 0 < window <= c.interval:
                out.append((window, float(c.bytes_changed)))
        off_at = None
    return out


def off_spans(records: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(off, on) epoch seconds of each time Alice was off and came back: a cutover's
    shutdown (its step's end) until a rollback powered her on again (the end of
    ``rollback_alice_on``).  A delta cycle whose interval spans one carries the writes
    of the seconds she ran only (bench_planner's rehearsal then rollback: a 2.8 s
    interval held 0.7 s of writes)."""
    spans: list[tuple[float, float]] = []
    off_at: float | None = None
    for rec in records:
        if rec.get("type") != "step" or rec.get("status") != "done":
            continue
        end = rec.get("end")
        if not isinstance(end, (int, float)):
            continue
        if rec.get("name") == "shutdown":
            off_at = float(end)
        elif rec.get("name") == "rollback_alice_on" and off_at is not None:
            spans.append((off_at, float(end)))
            off_at = None
    return spans


def writes_s(c: CycleRecord, off: Sequence[tuple[float, float]] = ()) -> float:
    """Seconds of guest writes a delta cycle's bytes hold: its interval (snapshot to
    snapshot) less the time Alice was off in it."""
    interval = c.interval or 0.0
    if not off or not c.snapshot_at:
        return interval
    start, end = c.snapshot_at - interval, c.snapshot_at
    down = sum(max(0.0, min(end, b) - max(start, a)) for a, b in off)
    return max(0.0, interval - down)


def _fit(points: Sequence[tuple[float, float]], least: int = 3) -> tuple[float, float] | None:
    """(working set, rate) by least squares over at least ``least`` points, when the
    windows differ enough to tell them apart."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    if len(xs) < least or max(xs) < 1.5 * min(xs):
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    rate = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    base = my - rate * mx
    if rate <= 0 or base <= 0:
        return None
    return base, rate


def dirty_model(cyc: Sequence[CycleRecord], finals: Sequence[tuple[float, float]] = (),
                off: Sequence[tuple[float, float]] = ()) -> DirtyModel:
    """The model from the recent tracked delta cycles (their seconds of writes: ``off``
    are the spans Alice was off) and the latest measured final window.  A final window
    is the short one the cutover will have, so with it one delta cycle of a clearly
    longer interval is enough for the line (bench_planner's rehearsal measured 68 MB in
    a 1.6 s window, where the rate of a 10 s delta predicted 22 MB)."""
    deltas = [c for c in _tracked_deltas(cyc) if writes_s(c, off) > 0]
    points = [(writes_s(c, off), float(c.bytes_changed)) for c in deltas[-FIT_WINDOW:]]
    if points and finals:
        points.append(finals[-1])
    fit = _fit(points, least=2 if finals else 3)
    if fit is not None:
        return DirtyModel(rate=fit[1], working_set=fit[0], source="fit", points=tuple(points))
    recent = deltas[-RATE_WINDOW:]
    secs = sum(writes_s(c, off) for c in recent)
    if not recent or secs <= 0:
        return DirtyModel(rate=0.0)
    rate = sum(float(c.bytes_changed) for c in recent) / secs
    return DirtyModel(rate=rate, source="rate", points=tuple(points))


def trend(cyc: Sequence[CycleRecord]) -> Trend:
    """The delta cycles since the last cycle of another kind (a seed, a hash-compare or a
    final cycle starts a new series), at most :data:`TREND_CYCLES`."""
    run: list[CycleRecord] = []
    for c in cyc:
        run = run + [c] if (c.kind == "delta" and c.rated and (c.interval or 0) > 0) else []
    run = run[-TREND_CYCLES:]
    return Trend(deltas=tuple(float(c.bytes_changed) for c in run),
                 intervals=tuple(c.interval or 0.0 for c in run))


__all__ = ["FIT_WINDOW", "RATE_WINDOW", "TREND_CYCLES", "DirtyModel", "Trend", "dirty_model",
           "final_windows", "off_spans", "trend", "writes_s"]
