"""Per VM: what the seed has to copy, the steady delta cycle, the predicted downtime.

Facts come from preflight (disk sizes, what the destination still has to allocate)
and, where the VM's workspace already ran cycles, from the planner over its journal
(:func:`vmigrate_lib.engine.converge.journal_plan`: measured dirty rate, throughput,
shutdown and boot).  The rest is arithmetic over the VM's share of its host pair's
bandwidth, the same model the planner uses (downtime = shutdown + final delta /
throughput + boot; "won't converge" when the guest dirties as fast as the link copies).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..engine.converge import journal_plan
from ..engine.workspace import Workspace
from ..params import MigrationParams
from ..units import fmt_rate
from .model import VmFacts, VmTask, WavePlan


@dataclass(frozen=True)
class Estimate:
    """One VM on its link (seconds, bytes/s)."""

    share: float  #: its bandwidth when its pair runs as many copies as the limits allow
    seed_s: float
    cycle_s: float  #: a warm delta cycle after ``interval`` seconds of writes
    downtime_s: float  #: shutdown + final delta + boot
    cutover_s: float  #: the cutover runbook's run: its downtime and its fixed cost
    converges: bool
    why: str  #: empty when it converges and fits its budget


def share_of(plan: WavePlan, vm: VmTask) -> float:
    """The VM's bandwidth: its pair's share divided among the copies the limits let run
    on that pair at once, or its own measured throughput if lower."""
    lim = plan.limits
    slots = min(lim.per_source, lim.per_destination, lim.in_flight)
    share = lim.bandwidth_of(vm.pair) / max(1, slots)
    return min(share, vm.facts.throughput) if vm.facts.throughput > 0 else share


def estimate(plan: WavePlan, vm: VmTask, rate: float | None = None) -> Estimate:
    """Seed, warm cycle and downtime at ``rate`` bytes/s (default: :func:`share_of`)."""
    f = vm.facts
    share = rate if rate is not None else share_of(plan, vm)
    seed = 0.0 if f.seeded else f.seed_bytes / share
    cycle = plan.cycle_overhead + f.dirty_rate * plan.interval / share
    # the final delta: what the guest wrote since the last cycle's snapshot and during shutdown
    final_window = plan.cycle_overhead + f.shutdown_s + min(cycle, plan.interval)
    downtime = f.shutdown_s + plan.cycle_overhead + f.dirty_rate * final_window / share + f.boot_s
    why = ""
    if f.dirty_rate >= share:
        why = (f"won't converge: dirties {fmt_rate(f.dirty_rate)} ({f.dirty_source}), at or "
               f"above its {fmt_rate(share)} share of {vm.pair}")
    elif downtime > vm.budget:
        why = (f"over budget: a cutover takes ~{downtime:.0f} s (shutdown {f.shutdown_s:.0f} s, "
               f"boot {f.boot_s:.0f} s) against {vm.budget:.0f} s")
    return Estimate(share, seed + plan.runbook_overhead, cycle, downtime,
                    downtime + plan.runbook_overhead, f.dirty_rate < share, why)


def measured_facts(task: VmTask, params: MigrationParams) -> VmFacts:
    """``task``'s facts with what its workspace measured (dirty rate, throughput, shutdown,
    boot); unchanged when the workspace ran no delta cycle yet."""
    ws = Workspace(params.workspace)
    state = ws.load() if (Path(params.workspace) / "state.json").exists() else None
    if state is None:
        return task.facts
    p = journal_plan(ws.journal, budget=float(params.downtime_budget),
                     shutdown_s=params.cutover.expected_shutdown,
                     boot_s=params.cutover.expected_boot)
    f = task.facts
    if p.dirty_source != "none":
        f = replace(f, dirty_rate=p.dirty_rate, dirty_source="measured")
    if p.throughput_source == "measured":
        f = replace(f, throughput=p.throughput)
    return replace(f, shutdown_s=p.shutdown, boot_s=p.boot, seeded=state.seeded)


def preflight_facts(task: VmTask, report: Any) -> VmFacts:
    """Sizes from a :class:`~vmigrate_lib.engine.preflight_model.PreflightReport`."""
    caps = sum(d.capacity for d in report.vm.disks) if report.vm is not None else 0
    return replace(task.facts, capacity=caps or task.facts.capacity,
                   seed_bytes=int(report.bytes_needed))
