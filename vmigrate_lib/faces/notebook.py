"""The notebook face: what the runbook cells call (parameter checks, the sync loop,
the cutover, audit outputs, display).

The notebooks stay thin (one call per step) so that what runs under papermill,
by hand in JupyterLab and in the tests is the same library code.  papermill
checks nothing about parameters (unknown ``-p`` names only warn), so the
validation cell compares the notebook's globals against the names the
parameters cell declared and stops on anything unknown or malformed.

A runbook's parameters are the params file's top-level keys (one schema,
:mod:`vmigrate_lib.params`, for the CLI and both runbooks), plus ``force`` for
the cutover runbook: a per-run decision that no params file may carry.  This
module drives the engine; :mod:`vmigrate_lib.audit` only reads what it records.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..audit import plots
from ..audit.dashboard import Dashboard, ipd, make_dashboard, readable_cycles
from ..audit.tables import (
    PREDICTION_TYPE,
    cutover_summary,
    cycles_frame,
    read_journal,
    save_frames,
    steps_frame,
)
from ..engine.context import Migration
from ..engine.converge import run_until_converged
from ..engine.cutover import run_cutover
from ..engine.cutover_steps import CutoverOptions, current_plan
from ..engine.cycle import CycleOutcome
from ..engine.planner import Plan
from ..engine.preflight import PreflightReport, run_preflight
from ..engine.progress import CutoverFinished, PredictionMade, Reporter, SyncFinished
from ..engine.workspace import Workspace
from ..errors import ParameterError
from ..params import MigrationParams, validate
from ..session import close_migration, open_migration

#: MIME type of the machine-readable result a runbook displays; the runner reads it.
RESULT_MIME = "application/vnd.vmigrate.result+json"

#: The params file's top-level keys: every runbook takes all of them.
SCHEMA_KEYS: tuple[str, ...] = tuple(f.name for f in fields(MigrationParams))
#: Parameter names each runbook accepts (its parameters cell declares exactly these).
RUNBOOK_PARAMETERS: dict[str, frozenset[str]] = {
    "sync": frozenset(SCHEMA_KEYS),
    "cutover": frozenset((*SCHEMA_KEYS, "force")),
}
_IGNORED = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


@dataclass(frozen=True)
class RunbookParams:
    """A runbook's checked parameters: the params file's, and the run's ``force``."""

    kind: str
    migration: MigrationParams
    force: bool = False  #: cutover runbook only: go even on a no-go (recorded as forced)

    @property
    def change_id(self) -> str:
        return self.migration.change_id

    @property
    def hosts(self) -> str:
        return self.migration.host_kind

    def summary(self) -> str:
        p = self.migration
        return (f"{self.kind} runbook for change {self.change_id} by {p.operator}: "
                f"{p.vm} on {p.source.host} -> {p.target_name} on {p.destination.host} "
                f"({self.hosts} hosts), workspace {p.workspace}, "
                f"downtime budget {p.downtime_budget:.0f} s")


def baseline(namespace: Mapping[str, Any]) -> frozenset[str]:
    """Names defined before the parameters cell (call in the first cell)."""
    return frozenset(namespace)


def given_parameters(namespace: Mapping[str, Any], before: frozenset[str]) -> dict[str, Any]:
    """The names the parameters cell and papermill's injected cell defined."""
    return {
        k: v for k, v in namespace.items()
        if k not in before and not k.startswith("_") and k not in _IGNORED
        and not isinstance(v, (types.ModuleType, types.FunctionType, type))
    }


def check_parameters(kind: str, given: Mapping[str, Any],
                     base_dir: Path | None = None) -> RunbookParams:
    """Check names, types and ranges of a runbook's parameters (or raise ParameterError).

    Everything but ``force`` is the params schema's (:func:`vmigrate_lib.params.validate`);
    a runbook also requires ``change_id`` and ``operator``.  A value of None (or "")
    means "not given": the schema's default applies.
    """
    if kind not in RUNBOOK_PARAMETERS:
        raise ParameterError(f"unknown runbook {kind!r}", hint="use sync or cutover")
    known = RUNBOOK_PARAMETERS[kind]
    unknown = sorted(set(given) - known)
    if unknown:
        raise ParameterError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"for the {kind} runbook",
            hint=f"known parameters: {', '.join(sorted(known))}",
            parameter=unknown[0],
        )
    raw = {k: v for k, v in given.items() if k != "force" and v is not None and v != ""}
    migration = validate(raw, base_dir=base_dir)
    if not migration.change_id:
        raise ParameterError(
            "missing parameter change_id",
            hint="a runbook run belongs to a change: give its ticket, e.g. change_id: CHG-12345",
            parameter="change_id",
        )
    if not migration.operator.strip():
        raise ParameterError("parameter operator is empty",
                             hint="name the person running this change", parameter="operator")
    force = given.get("force")
    force = False if force is None else force
    if not isinstance(force, bool):  # the rejected value is never repeated
        raise ParameterError("parameter force must be True or False",
                             hint="write force = True to go on a no-go, else leave it out",
                             parameter="force")
    return RunbookParams(kind, migration, force)


def validate_parameters(kind: str, namespace: Mapping[str, Any],
                        before: frozenset[str]) -> RunbookParams:
    """The validation cell: check, print one summary line, or stop with a clear message."""
    try:
        run = check_parameters(kind, given_parameters(namespace, before), base_dir=Path.cwd())
    except ParameterError as exc:
        print(f"PARAMETER ERROR: {exc.one_line()}", flush=True)
        raise
    print(run.summary(), flush=True)
    return run


# --- opening and the sync loop ---------------------------------------------------------------


def open_run(run: RunbookParams, reporter: Reporter) -> Migration:
    """Connect both hosts and load the workspace (nothing is changed yet)."""
    return open_migration(run.migration, reporter)


def note_run(m: Migration, run: RunbookParams) -> None:
    """Journal which change and operator this run belongs to (once the workspace exists)."""
    if m.workspace.exists:
        m.workspace.journal.append("runbook", runbook=run.kind, change_id=run.change_id,
                                   operator=run.migration.operator, hosts=run.hosts)


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
    print(p.summary(), flush=True)
    print(p.advice, flush=True)
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


# --- audit outputs ---------------------------------------------------------------------------


@dataclass
class AuditOutputs:
    folder: Path
    files: list[Path]


def audit_folder(workspace: Path) -> Path:
    """``<workspace>/audit``: the plain CSV/PNG copies a hand run leaves."""
    return Path(workspace) / "audit"


def save_audit(workspace: Path, *, budget: float | None = None,
               actual_downtime: float | None = None, show: bool = True,
               folder: Path | None = None) -> AuditOutputs:
    """Write cycles/steps CSV and the four figures to ``<workspace>/audit`` (or ``folder``)
    and display them: the evidence keeps plain files beside every widget."""
    records = read_journal(Workspace(workspace).journal.path)
    if actual_downtime is None:
        done = cutover_summary(records)
        actual_downtime = done.get("actual_downtime_s") if done else None
    cycles = cycles_frame(records)
    steps = steps_frame(records)
    folder = Path(folder) if folder is not None else audit_folder(workspace)
    figs = {
        "delta_bytes": plots.delta_bytes(cycles),
        "phase_durations": plots.phase_durations(cycles),
        "throughput": plots.throughput(cycles),
        "downtime": plots.downtime(cycles, budget=budget, actual=actual_downtime),
    }
    files = save_frames({"cycles": cycles, "steps": steps}, folder)
    files += plots.save_figures(figs, folder)
    if show:
        d = ipd()
        d.display(d.Markdown("**Cycles**"))
        d.display(cycles)
        d.display(d.Markdown("**Steps**"))
        d.display(steps)
        for name in figs:
            d.display(d.Image(filename=str(folder / f"{name}.png")))
    return AuditOutputs(folder, files)


def record_result(run: RunbookParams, data: Mapping[str, Any]) -> dict[str, Any]:
    """Display the run's result as a machine-readable output (the runner keeps it)."""
    result = {"runbook": run.kind, "change_id": run.change_id,
              "operator": run.migration.operator, **data}
    text = json.dumps(result, sort_keys=True, default=str)
    print(f"RESULT {text}", flush=True)
    ipd().display({RESULT_MIME: json.loads(text), "text/plain": text}, raw=True)
    return result


# --- small cell helpers ----------------------------------------------------------------------


def dashboard(run: RunbookParams) -> Reporter:
    """Show the live dashboard, seeded with the cycles already in the workspace journal."""
    p = run.migration
    history = read_journal(Workspace(p.workspace).journal.path)
    title = f"{run.kind}: {p.vm} -> {p.target_name} ({run.change_id})"
    return make_dashboard(title, budget=p.downtime_budget, history=history)


def preflight(m: Migration) -> PreflightReport:
    """Run preflight (changes nothing) and show its checks as a table; raise on failure.

    Pass the report on to :func:`sync_until_converged`, which then does not run it again."""
    report = run_preflight(m, raise_on_failure=False)
    ipd().display(pd.DataFrame(report.to_dict()["checks"]))
    err = report.first_error()
    if err is not None:
        raise err
    return report


def finish(reporter: Reporter) -> None:
    """Plain table and PNG beside the widget (no-op for a plain-line reporter)."""
    if isinstance(reporter, Dashboard):
        reporter.finish()


def close(m: Migration) -> None:
    """Close both hosts' connections and data-plane handles."""
    close_migration(m)
