"""``sync --until-converged``: cycles on the planner's advice, then stop and tell.

The loop never cuts over by itself (ProxCenter does; our operators asked to
choose the moment): it stops when a cutover now would fit the budget, when the
numbers show it never will (the guest dirties faster than the link copies, or the
deltas stopped shrinking: at most :data:`.dirty.TREND_CYCLES` cycles after they
did), or after ``max_cycles``; each plan is journaled.  Converged with no whole-disk
proof among the last ``cutover.full_certify_within`` cycles, it runs one more cycle
certified in full first (while the VM runs; beyond ``max_cycles`` if need be), so
that go/no-go finds one.
``vmigrate sync --until-converged`` and the sync runbook both run this loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .context import Migration
from .cutover_checks import proof_is_stale
from .cycle import CycleOutcome, run_cycle
from .planner import DEFAULT_TARGET_INTERVAL, MEASURED_TYPE, Plan, plan
from .preflight import PreflightReport
from .progress import PhaseReached
from .sync import start
from .workspace import Journal


@dataclass
class ConvergeResult:
    outcomes: list[CycleOutcome] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    stopped_because: str = ""  #: converged | won't converge | max cycles

    @property
    def plan(self) -> Plan | None:
        return self.plans[-1] if self.plans else None


def journal_plan(journal: Journal, *, budget: float, shutdown_s: float | None = None,
                 boot_s: float | None = None, throughput_override: float | None = None,
                 target_interval: float = DEFAULT_TARGET_INTERVAL,
                 certify: str = "changed") -> Plan:
    """The planner over this workspace's journal (cycles, and earlier cutovers' steps and
    measured timings), as of now."""
    records = [r for r in journal.records()
               if r.get("type") in ("cycle", "step", MEASURED_TYPE)]
    return plan(records, budget=budget, shutdown_s=shutdown_s, boot_s=boot_s,
                throughput_override=throughput_override, target_interval=target_interval,
                now=time.time(), certify=certify)


def run_until_converged(
    m: Migration,
    *,
    budget: float,
    max_cycles: int,
    target_interval: float = DEFAULT_TARGET_INTERVAL,
    throughput_override: float | None = None,
    shutdown_s: float | None = None,
    boot_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    report: PreflightReport | None = None,
    on_plan: Callable[[CycleOutcome, Plan], None] | None = None,
) -> ConvergeResult:
    """Run cycles, pausing as the planner advises, until converged (or clearly not).

    ``report``: a preflight already run (not run again); ``on_plan`` is called after
    each cycle's plan is journaled (the runbook records its prediction there).  The
    plan prices the final certify as the params' ``cutover.certify``, as go/no-go does.
    """
    start(m, report)
    res = ConvergeResult()
    want_full = proved = False  # once: the late whole-disk proof go/no-go wants (cutover_checks)
    while len(res.outcomes) < max_cycles or want_full:  # the proof may be one cycle more
        if res.plans:
            last = res.outcomes[-1].record
            pause = max(0.0, res.plans[-1].next_interval - float(last.get("duration", 0.0)))
            if pause > 0:
                m.reporter.event(PhaseReached(phase="wait", detail=f"{pause:.1f} s until next cycle"))
                sleep(pause)
        res.outcomes.append(run_cycle(m, certify="full" if want_full else None))
        proved, want_full = proved or want_full, False
        p = journal_plan(m.workspace.journal, budget=budget, shutdown_s=shutdown_s, boot_s=boot_s,
                         throughput_override=throughput_override, target_interval=target_interval,
                         certify=m.params.cutover.certify)
        res.plans.append(p)
        m.workspace.journal.append("plan", cycle=res.outcomes[-1].record.get("number"), **p.to_dict())
        m.reporter.event(PhaseReached(phase="plan", detail=p.summary()))
        if on_plan is not None:
            on_plan(res.outcomes[-1], p)
        if p.converged and not proved \
                and proof_is_stale(m, m.params.cutover.full_certify_within):
            want_full = True  # one more cycle, certified whole while the VM runs
            continue
        if p.converged:
            res.stopped_because = "converged"
            return res
        if not p.will_converge:
            res.stopped_because = "won't converge"
            return res
    res.stopped_because = "max cycles"
    return res
