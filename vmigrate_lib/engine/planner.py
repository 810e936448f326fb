"""The convergence planner: how long would a cutover take now, and is it worth waiting?

Downtime = shutdown + final delta / throughput + boot-to-ready (ProxCenter's
model, QEMU's "pending < bandwidth x downtime limit").  Everything is derived
from the journal (``cycle`` records, and ``cutover_measured`` and ``step`` records
of earlier cutovers), so a runbook tomorrow sees the same plan:

* dirty bytes of a window = working set + rate x window (:mod:`.dirty`: CBT counts
  64 KiB grains, so short windows dirty more per second than long ones; a
  rehearsal's final cycle measures a short window; a delta's window is the seconds
  Alice ran in its interval, a rollback's off time taken out);
* the final window = everything written from the last snapshot until Alice is
  off: the time since that snapshot, the go/no-go and the shutdown; or, when one
  more delta cycle right before the shutdown shortens it (the cutover's
  ``predelta`` step, as Veeam's planned failover runs an incremental before
  stopping the VM), that cycle's duration and the shutdown;
* throughput  = bytes changed / seconds of copy (the last few delta and final
  cycles, weighted by bytes: the guest's recent writes compress unlike a seed's
  disk; the operator may override a badly measured one, as in QEMU); the final
  copy at the rate of the rehearsal's final cycle when there was one;
* the final phase's fixed cost = what a rehearsal measured (snapshot, query,
  commit, clean-up, configuration files), else snapshot and query of a cycle;
  plus certifying the final delta at the measured certify rate;
* shutdown and boot = measured by earlier cutovers (:mod:`.cutover_timings`),
  else the given parameters.

"Won't converge" is said when the guest dirties faster than the link copies, or
as soon as :data:`.dirty.TREND_CYCLES` back-to-back deltas stop shrinking.
The planner is pure: records in, :class:`Plan` out; no clock unless ``now`` is given.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..units import fmt_bytes, fmt_rate, fmt_secs
from .cutover_timings import MEASURED_TYPE, CutoverTimings, cutover_timings, measured_timings
from .cycle_records import CycleRecord, cycle_records
from .dirty import RATE_WINDOW, DirtyModel, Trend, dirty_model, final_windows, off_spans, trend

#: Until a cutover measured them: a real guest's shutdown and boot-to-tools, seconds.
DEFAULT_SHUTDOWN_S = 30.0
DEFAULT_BOOT_S = 60.0
THROUGHPUT_WINDOW = 5
#: The interval the planner shrinks toward, seconds (a cycle every few seconds).
DEFAULT_TARGET_INTERVAL = 5.0
#: Each step shrinks the interval by this factor until the target.
SHRINK = 0.5
#: A last snapshot at most this old is "seconds old": no delta cycle before the shutdown.
PREDELTA_FRESH_S = 5.0


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
    overhead: float  #: non-copy part of final_copy (fixed cost, certify)
    boot: float
    boot_source: str
    predicted_downtime: float
    budget: float
    converged: bool
    will_converge: bool
    next_interval: float
    advice: str
    cycles_used: int
    predelta: bool = False  #: the cutover runs one more delta cycle before the shutdown
    predelta_s: float = 0.0  #: its predicted duration from its snapshot, seconds
    dirty_source: str = "none"  #: fit | rate | none (see :mod:`.dirty`)
    recent_deltas: tuple[float, ...] = ()  #: bytes of the last back-to-back delta cycles
    stalled: bool = False  #: those deltas stopped shrinking

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


def _rate(cycles: Sequence[CycleRecord]) -> float:
    secs = sum(c.phase("copy") for c in cycles)
    return sum(float(c.bytes_changed) for c in cycles) / secs if secs > 0 else 0.0


def _throughput(cycles: Sequence[CycleRecord]) -> float:
    """Bytes changed per second of copy over the last cycles that copied: the delta and
    final ones when there are, since the guest's recent writes compress and skip zeros
    unlike a seed's whole disk (bench_planner at 100 Mbit/s: a seed put 0.87 of its bytes
    on the wire, the deltas 0.21; with the seed counted the rate was 17 MB/s, the deltas
    alone ran at 43)."""
    copied = [c for c in cycles if c.phase("copy") > 0 and c.bytes_changed > 0]
    recent = [c for c in copied if c.kind in ("delta", "final")] or copied
    return _rate(recent[-THROUGHPUT_WINDOW:])


def _final_rate(cycles: Sequence[CycleRecord], thr: float) -> float:
    """The final copy's rate: the last final cycle's (a rehearsal's: Alice off, a
    final-sized delta, so the copy's own start is counted as it will be; its final phase's
    fixed cost is measured against it, :mod:`.cutover_timings`), else ``thr``."""
    finals = [c for c in cycles if c.kind == "final" and c.phase("copy") > 0
              and c.bytes_changed > 0]
    return _rate(finals[-1:]) if finals else thr


def _recent_deltas(cycles: Sequence[CycleRecord]) -> list[CycleRecord]:
    return [c for c in cycles if c.kind in ("delta", "final")][-RATE_WINDOW:]


def _overhead(cycles: Sequence[CycleRecord]) -> float:
    """Snapshot and change query: what every cycle pays whatever it copies.

    Not the snapshot removal: on a running guest it consolidates the writes made
    during the cycle, but the final cycle runs on a stopped one.
    """
    parts = [c.phase("snapshot") + c.phase("query") for c in _recent_deltas(cycles)]
    return statistics.median(parts) if parts else 0.0


def _tail(cycles: Sequence[CycleRecord]) -> float:
    """Seconds a delta cycle runs after its snapshot besides copying and certifying
    (query, commit, clean-up with the consolidation of a running guest's writes)."""
    parts = [max(0.0, c.duration - c.phase("snapshot") - c.phase("copy") - c.phase("certify")
                 - c.phase("hash")) for c in _recent_deltas(cycles) if c.kind == "delta"]
    return statistics.median(parts) if parts else 0.0


def _hash_cost(cycles: Sequence[CycleRecord]) -> float:
    """Seconds a cycle spends hashing whole disks, when the last delta cycle did (``hash``
    change tracking, or a disk whose changes could not be trusted): the final cycle will
    too, with Alice off, so it is downtime."""
    deltas = [c for c in cycles if c.kind == "delta"]
    if not deltas or not deltas[-1].hash_by_choice:
        return 0.0
    return statistics.median(c.phase("hash") for c in deltas[-RATE_WINDOW:] if c.hash_by_choice)


def _certify_rate(cycles: Sequence[CycleRecord]) -> float:
    """Bytes per second of the "changed" certify (both sides read and hashed)."""
    recent = [c for c in cycles if c.certify_mode == "changed"
              and c.phase("certify") > 0 and c.bytes_changed > 0]
    recent = recent[-THROUGHPUT_WINDOW:]
    secs = sum(c.phase("certify") for c in recent)
    return sum(float(c.bytes_changed) for c in recent) / secs if secs > 0 else 0.0


@dataclass(frozen=True)
class _Costs:
    """Seconds per byte moved and certified, and what a cycle costs whatever it moves."""

    thr: float
    cert_rate: float
    tail: float  #: of a delta cycle, after its snapshot (whole-disk hashing included)
    final_fixed: float  #: of the final phase
    final_thr: float  #: of the final copy

    def move(self, nbytes: float, final: bool = False) -> float:
        thr = self.final_thr if final else self.thr
        copy = nbytes / thr if thr > 0 else float("inf")
        return copy + (nbytes / self.cert_rate if self.cert_rate > 0 else 0.0)


@dataclass(frozen=True)
class _Final:
    predelta: bool
    predelta_s: float
    window: float
    final_bytes: float
    final_copy: float


def _final(model: DirtyModel, costs: _Costs, age: float, shutdown: float) -> _Final:
    """The final delta: its window, with or without one more delta cycle before the shutdown.

    ``age`` is the time from the last snapshot to the shutdown request without that
    cycle.  The cycle runs when it is shorter than ``age`` (it then shortens the window); a
    last snapshot at most :data:`PREDELTA_FRESH_S` old is left as it is."""
    pre_s = costs.tail + costs.move(model.bytes_in(age))
    predelta = model.source != "none" and age > PREDELTA_FRESH_S and pre_s < age
    window = (pre_s if predelta else age) + shutdown
    final_bytes = model.bytes_in(window)
    return _Final(predelta=predelta, predelta_s=pre_s if predelta else 0.0, window=window,
                  final_bytes=final_bytes, final_copy=costs.final_fixed + costs.move(final_bytes, final=True))


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
    timed = cutover_timings(records)
    cyc = [c for c in cycle_records(records) if c.ok]
    shutdown, s_src = _pick(timed.shutdown, shutdown_s, DEFAULT_SHUTDOWN_S)
    boot, b_src = _pick(timed.boot, boot_s, DEFAULT_BOOT_S)
    model = dirty_model(cyc, final_windows(records), off_spans(records))
    if throughput_override is not None and throughput_override > 0:
        thr, t_src = float(throughput_override), "override"
    else:
        thr = _throughput(cyc)
        t_src = "measured" if thr > 0 else "none"
    costs = _costs(cyc, timed, thr, certify)
    fin = _final(model, costs, _age(cyc, now) + (timed.decide or 0.0), shutdown)
    downtime = shutdown + fin.final_copy + boot
    fixed = shutdown + boot + costs.final_fixed
    tr = trend(cyc)
    have_data = model.source != "none" and thr > 0
    converged = have_data and downtime <= budget
    will_converge = converged or not have_data or (
        model.rate < thr and fixed < budget and not tr.stalled)
    last_interval = tr.intervals[-1] if tr.intervals else target_interval * 4
    next_interval = target_interval if converged else max(target_interval, last_interval * SHRINK)
    advice = _advice(_Verdict(have_data, converged, will_converge, bool(cyc)), model, thr,
                     downtime, budget, fixed, next_interval, tr)
    return Plan(
        dirty_rate=model.rate, working_set=model.working_set, throughput=thr,
        throughput_source=t_src, final_bytes=fin.final_bytes, window=fin.window,
        shutdown=shutdown, shutdown_source=s_src, final_copy=fin.final_copy,
        overhead=(fin.final_copy - fin.final_bytes / costs.final_thr if costs.final_thr > 0
                  else costs.final_fixed),
        boot=boot, boot_source=b_src, predicted_downtime=downtime, budget=budget,
        converged=converged, will_converge=will_converge, next_interval=next_interval,
        advice=advice, cycles_used=len(model.points), predelta=fin.predelta,
        predelta_s=fin.predelta_s, dirty_source=model.source, recent_deltas=tr.deltas,
        stalled=tr.stalled,
    )


def _costs(cyc: list[CycleRecord], timed: CutoverTimings, thr: float, certify: str) -> _Costs:
    cert_rate = _certify_rate(cyc) if certify == "changed" else 0.0
    hashing = _hash_cost(cyc)
    fixed = timed.final_fixed if timed.final_fixed is not None else _overhead(cyc) + hashing
    return _Costs(thr=thr, cert_rate=cert_rate, tail=_tail(cyc) + hashing, final_fixed=fixed,
                  final_thr=_final_rate(cyc, thr) if timed.final_fixed is not None else thr)


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


@dataclass(frozen=True)
class _Verdict:
    have_data: bool
    converged: bool
    will_converge: bool
    seeded: bool


def _advice(v: _Verdict, model: DirtyModel, thr: float, downtime: float, budget: float,
            fixed: float, next_interval: float, tr: Trend) -> str:
    if not v.have_data:
        return ("run the seed first (vmigrate sync)" if not v.seeded else
                "run at least one delta cycle so dirty rate and throughput can be measured")
    if v.converged:
        return (f"converged: a cutover now takes about {fmt_secs(downtime)}, within the "
                f"{fmt_secs(budget)} budget; run vmigrate cutover when the window opens "
                f"(keep syncing every {fmt_secs(next_interval)} until then)")
    if fixed >= budget:
        return (f"shutdown, boot and cycle overhead alone take {fmt_secs(fixed)}, more than the "
                f"{fmt_secs(budget)} budget: ask for a bigger window, or measure shutdown and "
                "boot in a rehearsal (they may be faster than assumed)")
    choose = (f"Choose a bigger window (a cutover now takes about {fmt_secs(downtime)}), more "
              "bandwidth (or --throughput if the measurement is wrong), or a quieter hour")
    if not v.will_converge and tr.stalled and model.rate < thr:
        deltas = ", ".join(fmt_bytes(d) for d in tr.deltas)
        secs = ", ".join(fmt_secs(s) for s in tr.intervals)
        return (f"won't converge: the last {len(tr.deltas)} deltas did not shrink ({deltas} "
                f"after {secs}): each cycle takes as long as the guest needs to dirty the "
                f"next one (dirty {fmt_rate(model.rate)}, copied at {fmt_rate(thr)}, plus each "
                f"cycle's fixed cost). " + choose)
    if not v.will_converge:
        return (f"won't converge: the guest dirties {fmt_rate(model.rate)}, at or above the "
                f"{fmt_rate(thr)} vmigrate copies, so every cycle falls behind. " + choose)
    return (f"not yet: a cutover now takes about {fmt_secs(downtime)}, over the "
            f"{fmt_secs(budget)} budget; sync again in {fmt_secs(next_interval)} "
            "(shorter intervals leave a smaller final delta)")


__all__ = ["DEFAULT_BOOT_S", "DEFAULT_SHUTDOWN_S", "DEFAULT_TARGET_INTERVAL", "MEASURED_TYPE",
           "PREDELTA_FRESH_S", "Plan", "measured_timings", "plan"]
