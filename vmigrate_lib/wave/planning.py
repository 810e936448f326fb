"""``vmigrate wave plan``: each VM's preflight and measured facts, then the schedule.

Nothing is changed: preflight is pure and the workspaces' journals are only read.  A
plan on paper (``preflight=False``) takes the sizes and dirty rates the wave file gives.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..engine.preflight import run_preflight
from ..errors import VmigrateError
from ..session import close_migration, open_migration
from .calibrate import measured_overhead
from .estimate import measured_facts, preflight_facts
from .model import VmTask, WavePlan
from .schedule import Schedule, schedule
from .spec import WaveSpec


@dataclass(frozen=True)
class WavePlanResult:
    plan: WavePlan
    schedule: Schedule
    refused: dict[str, str]  #: VM -> its preflight's first failure (one line)


def vm_facts(spec: WaveSpec, task: VmTask, preflight: bool) -> tuple[VmTask, str]:
    """The task with preflight's sizes and its workspace's measurements; "" or why not."""
    params = spec.checked[task.name]
    task = replace(task, facts=measured_facts(task, params))
    if not preflight:
        return task, ""
    try:
        m = open_migration(params)
    except VmigrateError as exc:
        return task, exc.one_line()
    try:
        report = run_preflight(m, raise_on_failure=False)
    finally:
        close_migration(m)
    err = report.first_error()
    return replace(task, facts=preflight_facts(task, report)), err.one_line() if err else ""


def make_plan(spec: WaveSpec, *, start_at: float, preflight: bool = True) -> WavePlanResult:
    tasks: list[VmTask] = []
    refused: dict[str, str] = {}
    for t in spec.tasks:
        task, why = vm_facts(spec, t, preflight)
        tasks.append(task)
        if why:
            refused[t.name] = why
    plan = spec.plan(start_at, tuple(tasks))
    measured = None if spec.runbook_overhead_set else measured_overhead(spec)
    if measured is not None:
        plan = replace(plan, runbook_overhead=measured.seconds, notes=(measured.note(),))
    return WavePlanResult(plan, schedule(plan), refused)


def _num(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else round(x, 3)


def plan_record(res: WavePlanResult) -> dict[str, Any]:
    """The schedule as JSON-ready data (``plan.json``; the report compares it with the run)."""
    return {
        "wave": res.plan.name, "start_at": res.plan.start_at,
        "makespan_s": _num(res.schedule.makespan), "refused": res.refused,
        "runbook_overhead_s": res.plan.runbook_overhead, "notes": list(res.plan.notes),
        "vms": [{"vm": s.vm.name, "group": s.vm.group, "source": s.vm.source,
                 "destination": s.vm.destination, "seed_bytes": s.vm.facts.seed_bytes,
                 "dirty_rate": s.vm.facts.dirty_rate, "dirty_source": s.vm.facts.dirty_source,
                 "share": s.est.share, "seed_s": _num(s.est.seed_s),
                 "downtime_s": _num(s.est.downtime_s), "seed_start": _num(s.seed_start),
                 "seed_end": _num(s.seed_end), "ready": _num(s.ready),
                 "cut_start": _num(s.cut_start), "cut_end": _num(s.cut_end),
                 "verdict": s.verdict, "why": s.why} for s in res.schedule.slots],
    }


def save_plan(res: WavePlanResult, folder: Path) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "plan.json"
    path.write_text(json.dumps(plan_record(res), indent=1))
    return path
