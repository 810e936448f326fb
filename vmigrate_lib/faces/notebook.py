"""The notebook face: what the runbook cells call (parameter checks, the sync loop,
the cutover, audit outputs, display).

The notebooks stay thin (one call per step) so that what runs under papermill,
by hand in JupyterLab and in the tests is the same library code.  The
parameter cells' helpers live in :mod:`.runbook_params` (re-exported here for the
notebooks' ``rb.``).  This module drives the engine; :mod:`vmigrate_lib.audit` only
reads what it records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..audit.dashboard import Dashboard, ipd, make_dashboard, readable_cycles
from ..audit.tables import (
    PREDICTION_TYPE,
    cycles_frame,
    read_journal,
)
from ..engine.context import Migration
from ..engine.converge import run_until_converged
from ..engine.cutover import run_cutover
from ..engine.cutover_steps import CutoverOptions, current_plan
from ..engine.cycle import CycleOutcome
from ..engine.planner import Plan
from ..engine.preflight import PreflightReport, run_preflight
from ..engine.progress import (
    CheckReported,
    CutoverFinished,
    Event,
    PredictionMade,
    Reporter,
    SyncFinished,
)
from ..engine.workspace import Workspace
from ..session import close_migration, open_migration
from ..units import fmt_rate, fmt_secs
from . import hand_run  # noqa: F401  (registers the hand-run archive with runbook_run)
from .audit_outputs import RESULT_MIME, SCRAP_MIME
from .audit_outputs import AuditOutputs as AuditOutputs
from .audit_outputs import audit_folder as audit_folder
from .audit_outputs import save_audit as save_audit
from .runbook_params import RunbookParams as RunbookParams
from .runbook_params import check_parameters as check_parameters
from .runbook_params import validate_parameters as validate_parameters
from .runbook_run import HAND_RUN_START, LIVE_DASHBOARDS, RUNS, show_errors_in_one_line
from .runbook_run import baseline as baseline

# --- opening and the sync loop ---------------------------------------------------------------


def open_run(run: RunbookParams, reporter: Reporter) -> Migration:
    """Connect both hosts and load the workspace (nothing is changed yet)."""
    return open_migration(run.migration, reporter)


def note_run(m: Migration, run: RunbookParams) -> None:
    """Journal which change and operator this run belongs to (once the workspace exists),
    and the other change it continues, if ``continue_change`` said so."""
    if m.workspace.exists:
        extra = {"continues": run.continue_change} if run.continue_change else {}
        m.workspace.journal.append("runbook", runbook=run.kind, change_id=run.change_id,
                                   operator=run.migration.operator, hosts=run.hosts, **extra)


@dataclass
class Prediction:
    """The planner's verdict after a cycle."""

    cycle: int
    predicted_downtime: float | None
    budget: float
    converged: bool
    detail: str = ""

    def to_record(self) -> dict[str, Any]:
        return {"cycle": self.cycle, "predicted_downtime": self.predicted_downtime,
                "budget": self.budget, "converged": self.converged, "detail": self.detail}


@dataclass
class SyncResult:
    cycles_run: int
    total_cycles: int
    converged: bool
    prediction: Prediction | None
    stopped_because: str = ""  #: converged | won't converge | max cycles

    def to_record(self) -> dict[str, Any]:
        return {"status": "ok", "cycles_run": self.cycles_run, "total_cycles": self.total_cycles,
                "converged": self.converged, "stopped_because": self.stopped_because,
                "prediction": self.prediction.to_record() if self.prediction else None}


def sync_until_converged(m: Migration, run: RunbookParams,
                         report: PreflightReport | None = None) -> SyncResult:
    """Seed if needed, then delta cycles on the planner's advice until a cutover fits the
    budget: the loop of ``vmigrate sync --until-converged`` (``sync.max_cycles``,
    ``sync.target_interval``).  ``report``: the preflight step's (not run again)."""
    p = run.migration
    last: list[Prediction] = []

    def on_plan(outcome: CycleOutcome, plan: Plan) -> None:
        if not last:
            note_run(m, run)
        pred = Prediction(int(outcome.record.get("number", 0)), plan.predicted_downtime,
                          p.downtime_budget, plan.converged, plan.advice)
        m.workspace.journal.append(PREDICTION_TYPE, **pred.to_record())
        m.reporter.event(PredictionMade(pred.to_record()))
        last.append(pred)

    with m.workspace:
        res = run_until_converged(m, budget=p.downtime_budget, max_cycles=p.sync.max_cycles,
                                  target_interval=p.sync.target_interval, report=report,
                                  shutdown_s=p.cutover.expected_shutdown,
                                  boot_s=p.cutover.expected_boot, on_plan=on_plan)
        total = m.workspace.state.cycles
    pred = last[-1] if last else None
    result = SyncResult(len(res.outcomes), total, res.stopped_because == "converged", pred,
                        res.stopped_because)
    m.reporter.event(SyncFinished(cycles=result.cycles_run, converged=result.converged))
    return result


# --- cutover ---------------------------------------------------------------------------------


def cutover_options(run: RunbookParams) -> CutoverOptions:
    """The engine's CutoverOptions: the ``cutover`` section, and this run's ``force``."""
    return CutoverOptions.from_params(run.migration.cutover,
                                      budget=run.migration.downtime_budget, force=run.force)


def show_plan(m: Migration, run: RunbookParams) -> dict[str, Any]:
    """What go/no-go will see: the planner's prediction now, and the cycles so far."""
    p = current_plan(m, cutover_options(run), run.migration.downtime_budget)
    verdict = "CONVERGED" if p.converged else (
        "won't converge" if not p.will_converge else "not yet")
    # a table, not a line: go/no-go says the same prediction in its line when the cutover runs
    ipd().display(pd.DataFrame([{
        "predicted downtime": fmt_secs(p.predicted_downtime), "shutdown": fmt_secs(p.shutdown),
        "final copy": fmt_secs(p.final_copy), "boot": fmt_secs(p.boot),
        "budget": fmt_secs(p.budget), "verdict": verdict, "dirty rate": fmt_rate(p.dirty_rate),
        "throughput": fmt_rate(p.throughput)}]))
    ipd().display(readable_cycles(cycles_frame(read_journal(m.workspace.journal.path))))
    return p.to_dict()


def cutover(m: Migration, run: RunbookParams) -> dict[str, Any]:
    """Run (or resume) the cutover under the workspace lock; returns its result record."""
    note_run(m, run)
    with m.workspace:
        res = run_cutover(m, cutover_options(run))
    out = {"status": res.status, "attempt": res.attempt, "downtime_s": res.downtime,
           "predicted_downtime_s": res.predicted, "parts": res.parts,
           "warnings": res.warnings}
    m.reporter.event(CutoverFinished({k: v for k, v in out.items() if k != "parts"}))
    return out


# --- the run's result ------------------------------------------------------------------------


def record_result(run: RunbookParams, data: Mapping[str, Any]) -> dict[str, Any]:
    """Display the run's result as a machine-readable output (the runner keeps it), which
    is also a scrapbook scrap named ``result`` (scrapbook's own payload, version 1, so
    ``sb.read_notebook(path).scraps["result"].data`` reads it without the kernel
    importing scrapbook)."""
    result = {"runbook": run.kind, "change_id": run.change_id,
              "operator": run.migration.operator, **data}
    text = json.dumps(result, sort_keys=True, default=str)
    print(f"RESULT {text}", flush=True)
    plain = json.loads(text)
    scrap = {"name": "result", "data": plain, "encoder": "json", "version": 1}
    # text/plain empty: the RESULT line above says it once (before: the JSON twice)
    ipd().display({RESULT_MIME: plain, SCRAP_MIME: scrap, "text/plain": ""},
                  metadata={"scrapbook": {"name": "result", "data": True, "display": False}},
                  raw=True)
    return result


# --- small cell helpers ----------------------------------------------------------------------


def dashboard(run: RunbookParams) -> Reporter:
    """Show the live dashboard, seeded with the cycles already in the workspace journal."""
    p = run.migration
    journal = Workspace(p.workspace).journal.path
    HAND_RUN_START.update(started=time.time(),
                          offset=journal.stat().st_size if journal.exists() else 0)
    history = read_journal(journal)
    title = f"{run.kind}: {p.vm} -> {p.target_name} ({run.change_id})"
    dash = make_dashboard(title, budget=p.downtime_budget, history=history)
    LIVE_DASHBOARDS.clear()  # the newest run's dashboard shows a cell's failure
    if isinstance(dash, Dashboard):
        LIVE_DASHBOARDS.append(dash)
    RUNS[:] = [run]
    return dash


def preflight(m: Migration) -> PreflightReport:
    """Run preflight (changes nothing) and show its checks as a table; raise on failure.

    Pass the report on to :func:`sync_until_converged`, which then does not run it again.
    The failing check that stops the run is said once, by its error (not also as a line)."""
    held = _HeldEvents()
    shown, m.reporter = m.reporter, held
    try:
        report = run_preflight(m, raise_on_failure=False)
    finally:
        m.reporter = shown
    err = report.first_error()
    first_fail = next((c for c in report.checks if not c.ok), None)
    for ev in held.events:
        if not (isinstance(ev, CheckReported) and first_fail is not None and err is not None
                and ev.name == first_fail.name and ev.detail == first_fail.detail):
            shown.event(ev)
    ipd().display(pd.DataFrame(report.to_dict()["checks"]))
    if err is not None:
        raise err
    return report


class _HeldEvents(Reporter):
    """Keeps the events it gets, to pass on after a look at the whole (preflight)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, ev: Event, /) -> None:
        self.events.append(ev)


def finish(reporter: Reporter) -> None:
    """Plain table and PNG beside the widget (no-op for a plain-line reporter)."""
    if isinstance(reporter, Dashboard):
        reporter.finish()


def close(m: Migration) -> None:
    """Close both hosts' connections and data-plane handles."""
    close_migration(m)


show_errors_in_one_line()
