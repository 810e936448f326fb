"""The convergence planner: how long would a cutover take now, and is it worth waiting?

Downtime = shutdown + final delta / throughput + boot-to-ready (ProxCenter's
model, QEMU's "pending < bandwidth x downtime limit").  Everything is derived
from the journal's ``cycle`` records, so a runbook tomorrow sees the same plan:

* dirty rate  = bytes changed per second of snapshot-to-snapshot interval (the
  last few tracked delta cycles); when intervals vary, a fit of
  bytes = working set + rate x interval, since a hot set is dirtied whole in
  any interval and only the rest grows with time;
* throughput  = bytes changed / seconds of copy (the last few cycles, weighted by
  bytes; the operator may override a badly measured one, as in QEMU);
* overhead    = snapshot and query of a cycle, plus certifying the final delta at
  the measured certify rate;
* shutdown and boot = measured by earlier cutovers (``cutover_measured`` journal
  records, e.g. a rehearsal that was rolled back), else the given parameters.

The planner is pure: records in, :class:`Plan` out; no clock unless ``now`` is given.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..units import fmt_rate, fmt_secs
from .cycle_records import CycleRecord, cycle_records

#: Until a cutover measured them: a real guest's shutdown and boot-to-tools, seconds.
DEFAULT_SHUTDOWN_S = 30.0
DEFAULT_BOOT_S = 60.0
#: Cycles the rates are averaged over (recent ones describe the cutover best).
RATE_WINDOW = 3
FIT_WINDOW = 6
THROUGHPUT_WINDOW = 5
#: The interval the planner shrinks toward, seconds (a cycle every few seconds).
DEFAULT_TARGET_INTERVAL = 5.0
#: Each step shrinks the interval by this factor until the target.
SHRINK = 0.5
#: The journal record type with the timings a cutover measured.
MEASURED_TYPE = "cutover_measured"


@dataclass(frozen=True)
class Plan:
    """A prediction of a cutover now and what to do next (all rates B/s, times s)."""

    dirty_rate: float  #: bytes/s the final delta grows by per second of writes
    working_set: float  #: bytes dirtied in any interval however short (hot set); 0 = unknown
    throughput: float
    throughput_source: str  #: "measured" | "override" | "none"
    final_bytes: float  #: predicted bytes of the final delta
    window: float  #: seconds of guest writes the final delta will carry
    shutdown: float
    shutdown_source: str  #: "measured" | "parameter" | "default"
    final_copy: float
    overhead: float  #: non-copy part of final_copy (snapshot, query, certify)
    boot: float
    boot_source: str
    predicted_downtime: float
    budget: float
    converged: bool
    will_converge: bool
    next_interval: float
    advice: str
    cycles_used: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a terminal or a runbook cell."""
        verdict = "CONVERGED" if self.converged else (
            "won't converge" if not self.will_converge else "not yet")
        return (
            f"predicted downtime {fmt_secs(self.predicted_downtime)} "
            f"(shutdown {fmt_secs(self.shutdown)} + final copy {fmt_secs(self.final_copy)} + "
            f"boot {fmt_secs(self.boot)}) vs budget {fmt_secs(self.budget)}: {verdict}; "
            f"dirty {fmt_rate(self.dirty_rate)}, throughput {fmt_rate(self.throughput)}"
        )


def measured_timings(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Shutdown and boot seconds of the latest cutover that measured them."""
    out: dict[str, float] = {}
    for rec in records:
        if rec.get("type") != MEASURED_TYPE:
            continue
        for key in ("shutdown_s", "boot_s"):
            value = rec.get(key)
            if isinstance(value, (int, float)) and value >= 0:
                out[key] = float(value)
    return out


def _fit(deltas: Sequence[CycleRecord]) -> tuple[float, float | None]:
    """bytes(W) = working set + rate x W, by least squares over varied intervals.

    A guest rewriting a hot set dirties all of it within any interval, then only
    its cold writes grow with time: through-origin rates from long intervals
    would under-predict a short final window.  Needs intervals that differ
    (the shrinking cycles give them); returns (0, None) when they do not.
    """
    xs = [c.interval or 0.0 for c in deltas]
    ys = [float(c.bytes_changed) for c in deltas]
    if len(xs) < 3 or max(xs) < 1.5 * min(xs):
        return 0.0, None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    rate = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    if rate <= 0:
        return 0.0, None
    base = my - rate * mx
    if base <= 0:
        return 0.0, None
    return base, rate


def _throughput(cycles: Sequence[CycleRecord]) -> float:
    recent = [c for c in cycles if c.phase("copy") > 0
              and c.bytes_changed > 0][-THROUGHPUT_WINDOW:]
    secs = sum(c.phase("copy") for c in recent)
    return sum(float(c.bytes_changed) for c in recent) / secs if secs > 0 else 0.0


def _overhead(cycles: Sequence[CycleRecord]) -> float:
    """Snapshot and change query: what every cycle pays whatever it copies.

    Not the snapshot removal: on a running guest it consolidates the writes made
    during the cycle, but the final cycle runs on a stopped one.
    """
    recent = [c for c in cycles if c.kind in ("delta", "final")][-RATE_WINDOW:]
    parts = [c.phase("snapshot") + c.phase("query") for c in recent]
    return statistics.median(parts) if parts else 0.0


def _certify_rate(cycles: Sequence[CycleRecord]) -> float:
    """Bytes per second of the "changed" certify (both sides read and hashed)."""
    recent = [c for c in cycles if c.certify_mode == "changed"
              and c.phase("certify") > 0 and c.bytes_changed > 0]
    recent = recent[-THROUGHPUT_WINDOW:]
    secs = sum(c.phase("certify") for c in recent)
    return sum(float(c.bytes_changed) for c in recent) / secs if secs > 0 else 0.0


def plan(
    cycles: list[dict[str, Any]],
    *,
    budget: float,
    shutdown_s: float | None = None,
    boot_s: float | None = None,
    throughput_override: float | None = None,
    target_interval: float = DEFAULT_TARGET_INTERVAL,
    now: float | None = None,
    certify: str = "changed",
) -> Plan:
    """Predict a cutover from journal records (``cycle`` ones; others are used for timings).

    ``now`` (epoch seconds) makes the final delta cover the time since the last
    snapshot; without it the cutover is assumed to follow the last cycle at once.
    ``certify`` is the final cycle's mode: "changed" costs the final bytes at the
    measured certify rate ("full" is not predicted: it depends on disk sizes).
    """
    records = list(cycles)
    timed = measured_timings(records)
    cyc = [c for c in cycle_records(records) if c.ok]
    shutdown, s_src = _pick(timed.get("shutdown_s"), shutdown_s, DEFAULT_SHUTDOWN_S)
    boot, b_src = _pick(timed.get("boot_s"), boot_s, DEFAULT_BOOT_S)
    recent, dirty, working_set = _dirty_rate(cyc)
    if throughput_override is not None and throughput_override > 0:
        thr, t_src = float(throughput_override), "override"
    else:
        thr = _throughput(cyc)
        t_src = "measured" if thr > 0 else "none"
    overhead = _overhead(cyc)
    window = _age(cyc, now) + shutdown
    final_bytes = working_set + dirty * window
    cert_rate = _certify_rate(cyc) if certify == "changed" else 0.0
    if cert_rate > 0:
        overhead += final_bytes / cert_rate
    final_copy = overhead + (final_bytes / thr if thr > 0 else float("inf"))
    downtime = shutdown + final_copy + boot
    fixed = shutdown + boot + overhead

    have_data = bool(recent) and thr > 0
    converged = have_data and downtime <= budget
    will_converge = converged or not have_data or (dirty < thr and fixed < budget)
    last_interval = (recent[-1].interval or 0.0) if recent else target_interval * 4
    next_interval = target_interval if converged else max(target_interval, last_interval * SHRINK)
    advice = _advice(have_data, converged, will_converge, dirty, thr, downtime, budget,
                     fixed, next_interval, bool(cyc))
    return Plan(
        dirty_rate=dirty, working_set=working_set, throughput=thr, throughput_source=t_src, final_bytes=final_bytes,
        window=window, shutdown=shutdown, shutdown_source=s_src, final_copy=final_copy,
        overhead=overhead, boot=boot, boot_source=b_src, predicted_downtime=downtime,
        budget=budget, converged=converged, will_converge=will_converge,
        next_interval=next_interval, advice=advice, cycles_used=len(recent),
    )


def _dirty_rate(cyc: list[CycleRecord]) -> tuple[list[CycleRecord], float, float]:
    """The delta cycles the rate comes from, the dirty rate (bytes/s) and the working set
    (bytes rewritten whatever the interval), from the hot-set fit when it has one."""
    # a hash-compare cycle's bytes are differences, not writes per interval: no rate
    deltas = [c for c in cyc if c.kind == "delta" and (c.interval or 0) > 0 and c.tracked]
    recent = deltas[-RATE_WINDOW:]
    interval_sum = sum(c.interval or 0.0 for c in recent)
    dirty = sum(float(c.bytes_changed) for c in recent) / interval_sum if recent else 0.0
    working_set, rate = _fit(deltas[-FIT_WINDOW:])
    return recent, (rate if rate is not None else dirty), working_set


def _age(cyc: list[CycleRecord], now: float | None) -> float:
    """Seconds the final delta covers before the shutdown: since the last snapshot when
    ``now`` is given, else the last cycle's duration (a cutover right after it)."""
    last = cyc[-1] if cyc else None
    if last is not None and now is not None and last.snapshot_at:
        return max(0.0, now - last.snapshot_at)
    return last.duration if last else 0.0


def _pick(measured: float | None, given: float | None, default: float) -> tuple[float, str]:
    if measured is not None:
        return measured, "measured"
    if given is not None:
        return float(given), "parameter"
    return default, "default"


def _advice(
    have_data: bool, converged: bool, will_converge: bool, dirty: float, thr: float,
    downtime: float, budget: float, fixed: float, next_interval: float, seeded: bool,
) -> str:
    if not have_data:
        return ("run the seed first (vmigrate sync)" if not seeded else
                "run at least one delta cycle so dirty rate and throughput can be measured")
    if converged:
        return (f"converged: a cutover now takes about {fmt_secs(downtime)}, within the "
                f"{fmt_secs(budget)} budget; run vmigrate cutover when the window opens "
                f"(keep syncing every {fmt_secs(next_interval)} until then)")
    if fixed >= budget:
        return (f"shutdown, boot and cycle overhead alone take {fmt_secs(fixed)}, more than the "
                f"{fmt_secs(budget)} budget: ask for a bigger window, or measure shutdown and "
                "boot in a rehearsal (they may be faster than assumed)")
    if not will_converge:
        return (f"won't converge: the guest dirties {fmt_rate(dirty)}, at or above the "
                f"{fmt_rate(thr)} vmigrate copies, so every cycle falls behind. Choose a "
                f"bigger window (a cutover now takes about {fmt_secs(downtime)}), more "
                "bandwidth (or --throughput if the measurement is wrong), or a quieter hour")
    return (f"not yet: a cutover now takes about {fmt_secs(downtime)}, over the "
            f"{fmt_secs(budget)} budget; sync again in {fmt_secs(next_interval)} "
            "(shorter intervals leave a smaller final delta)")


__all__ = ["DEFAULT_BOOT_S", "DEFAULT_SHUTDOWN_S", "DEFAULT_TARGET_INTERVAL", "MEASURED_TYPE",
           "Plan", "measured_timings", "plan"]
