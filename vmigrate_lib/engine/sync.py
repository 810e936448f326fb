"""Run sync cycles: the seed, then deltas, pausing between them as asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .context import Migration
from .cycle import CycleOutcome, run_cycle
from .preflight import PreflightReport, run_preflight
from .progress import PhaseReached


def start(m: Migration, report: PreflightReport | None = None) -> None:
    """Preflight (changes nothing), then claim the workspace for this migration.

    Callers may run preflight before taking the workspace lock and pass its
    ``report``, so that bad input never even creates the workspace.
    """
    if report is None:
        report = run_preflight(m)
    m.workspace.init(m.identity())
    m.workspace.journal.append("preflight", **report.to_dict())
    if m.params.sync.allow_enable_cbt:
        vm = m.vm()
        if any(not d.cbt_enabled for d in vm.disks):
            m.source.enable_change_tracking(vm.name)
            m.workspace.journal.append("cbt_enabled", vm=vm.name)
            m.reporter.event(PhaseReached(phase="change tracking", detail="enabled"))


def run_cycles(
    m: Migration,
    cycles: int,
    *,
    interval: float | None = None,
    should_stop: Callable[[list[dict[str, Any]]], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    report: PreflightReport | None = None,
) -> list[CycleOutcome]:
    """Run up to ``cycles`` cycles (the first is the seed if none was done)."""
    start(m, report)
    pause = m.params.sync.interval if interval is None else interval
    done: list[CycleOutcome] = []
    for i in range(cycles):
        if i and pause > 0:
            m.reporter.event(PhaseReached(phase="wait", detail=f"{pause:.0f} s until next cycle"))
            sleep(pause)
        done.append(run_cycle(m))
        if should_stop is not None and should_stop([o.record for o in done]):
            break
    return done
