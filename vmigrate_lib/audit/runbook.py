"""What the runbook cells call: parameter checks, the sync loop, audit outputs.

The notebooks stay thin (one call per step) so that what runs under papermill,
by hand in JupyterLab and in the tests is the same library code.  papermill
checks nothing about parameters (unknown ``-p`` names only warn), so the
validation cell compares the notebook's globals against the names the
parameters cell declared and stops on anything unknown or malformed.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.context import Migration
from ..engine.progress import Reporter
from ..errors import ParameterError
from ..params import MigrationParams, validate
from . import plots
from .tables import PREDICTION_TYPE, cycles_frame, save_frames, steps_frame

#: MIME type of the machine-readable result a runbook displays; the runner reads it.
RESULT_MIME = "application/vnd.vmigrate.result+json"

_COMMON = ("vm", "hosts", "source", "destination", "workspace", "downtime_budget",
           "change_id", "operator", "dest_name", "sync")
#: Parameter names each runbook accepts (its parameters cell declares exactly these).
RUNBOOK_PARAMETERS: dict[str, frozenset[str]] = {
    "sync": frozenset((*_COMMON, "max_cycles", "cycle_interval")),
    "cutover": frozenset((*_COMMON, "shutdown_timeout", "allow_hard_poweroff", "certify",
                          "max_sync_age", "probes", "ready_timeout", "force")),
}
_MIGRATION_KEYS = ("vm", "source", "destination", "workspace", "downtime_budget", "operator",
                   "dest_name", "sync")
_CHANGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{1,63}$")
_IGNORED = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


@dataclass(frozen=True)
class RunbookParams:
    """A runbook's checked parameters: the migration's plus the change's."""

    kind: str
    migration: MigrationParams
    change_id: str
    hosts: str
    options: dict[str, Any] = field(default_factory=dict)

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


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParameterError(f"parameter {name} must be a whole number from {lo} to {hi}, "
                             f"got {value!r}", parameter=name)
    return value


def _check_duration(name: str, value: Any) -> float:
    from ..units import parse_duration

    try:
        return parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"parameter {name}: {exc}", parameter=name) from exc


def check_parameters(kind: str, given: Mapping[str, Any],
                     base_dir: Path | None = None) -> RunbookParams:
    """Check names, types and ranges of a runbook's parameters (or raise ParameterError)."""
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
    hosts = given.get("hosts", "lab")
    if hosts not in ("lab", "real"):
        raise ParameterError(f"parameter hosts must be 'lab' or 'real', got {hosts!r}",
                             parameter="hosts")
    change_id = given.get("change_id", "")
    if not isinstance(change_id, str) or not _CHANGE_ID.match(change_id):
        raise ParameterError(
            f"parameter change_id: {change_id!r} is not a change reference",
            hint="give the change ticket, e.g. CHG-12345 (letters, digits, . _ / -)",
            parameter="change_id",
        )
    operator = given.get("operator", "")
    if not isinstance(operator, str) or not operator.strip():
        raise ParameterError("parameter operator is empty",
                             hint="name the person running this change", parameter="operator")
    raw = {k: given[k] for k in _MIGRATION_KEYS if k in given and given[k] not in (None, "")}
    for key in ("sync",):
        if key in given and given[key] in (None, ""):
            raw[key] = {}
    migration = validate(raw, base_dir=base_dir)
    for side, hp in (("source", migration.source), ("destination", migration.destination)):
        if (hp.type == "lab") != (hosts == "lab"):
            raise ParameterError(
                f"parameter {side}.type is {hp.type!r} but hosts is {hosts!r}",
                hint="a rehearsal uses lab hosts on both sides, a real change none",
                parameter=f"{side}.type",
            )
    options: dict[str, Any] = {}
    if kind == "sync":
        options["max_cycles"] = _check_int("max_cycles", given.get("max_cycles", 8), 1, 1000)
        options["cycle_interval"] = _check_duration("cycle_interval",
                                                    given.get("cycle_interval", 0))
    else:
        options["shutdown_timeout"] = _check_duration("shutdown_timeout",
                                                      given.get("shutdown_timeout", "5m"))
        options["ready_timeout"] = _check_duration("ready_timeout",
                                                   given.get("ready_timeout", "10m"))
        options["max_sync_age"] = _check_duration("max_sync_age",
                                                  given.get("max_sync_age", "10m"))
        for flag in ("allow_hard_poweroff", "force"):
            value = given.get(flag, False)
            if not isinstance(value, bool):
                raise ParameterError(f"parameter {flag} must be True or False, got {value!r}",
                                     parameter=flag)
            options[flag] = value
        certify = given.get("certify", "changed")
        if certify not in ("none", "changed", "full"):
            raise ParameterError(f"parameter certify must be none, changed or full, "
                                 f"got {certify!r}", parameter="certify")
        options["certify"] = certify
        probes = given.get("probes", []) or []
        if not isinstance(probes, (list, tuple)) or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 < x < 65536 for x in probes):
            raise ParameterError(f"parameter probes must be a list of TCP ports, got {probes!r}",
                                 parameter="probes")
        options["probes"] = tuple(probes)
    return RunbookParams(kind, migration, change_id, str(hosts), options)


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
    from ..session import open_migration

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


def predict(records: list[dict[str, Any]], budget: float) -> Prediction:
    """Ask the planner for the downtime of a cutover now, from the journal's records."""
    from ..engine.planner import plan

    cycles = [r for r in records if r.get("type") == "cycle"]
    number = int(cycles[-1]["number"]) if cycles else 0
    p = plan(records, budget=budget)
    return Prediction(number, p.predicted_downtime, budget, p.converged, p.advice)


@dataclass
class SyncResult:
    cycles_run: int
    total_cycles: int
    converged: bool
    prediction: Prediction | None

    def to_record(self) -> dict[str, Any]:
        return {"status": "ok", "cycles_run": self.cycles_run, "total_cycles": self.total_cycles,
                "converged": self.converged,
                "prediction": self.prediction.to_record() if self.prediction else None}


def sync_until_converged(m: Migration, run: RunbookParams) -> SyncResult:
    """Seed if needed, then delta cycles until the planner says a cutover fits the budget."""
    from ..engine.sync import run_cycles

    budget = run.migration.downtime_budget
    last: list[Prediction] = []

    def should_stop(done: list[dict[str, Any]]) -> bool:
        if len(done) == 1:
            note_run(m, run)
        pred = predict(list(m.workspace.journal.records()), budget)
        m.workspace.journal.append(PREDICTION_TYPE, **pred.to_record())
        m.reporter.event(PREDICTION_TYPE, **pred.to_record())
        last.append(pred)
        return pred.converged

    with m.workspace:
        outcomes = run_cycles(m, int(run.options["max_cycles"]),
                              interval=float(run.options["cycle_interval"]),
                              should_stop=should_stop)
        total = int(m.workspace.state.get("cycles", 0))
    pred = last[-1] if last else None
    result = SyncResult(len(outcomes), total, bool(pred and pred.converged), pred)
    m.reporter.event("sync_done", cycles=result.cycles_run, converged=result.converged)
    return result


# --- cutover ---------------------------------------------------------------------------------


def cutover_options(run: RunbookParams) -> Any:
    """The engine's CutoverOptions from the runbook's checked parameters."""
    from ..engine.cutover_steps import CutoverOptions

    o = run.options
    return CutoverOptions(
        budget=run.migration.downtime_budget, force=bool(o["force"]),
        max_sync_age=float(o["max_sync_age"]), shutdown_timeout=float(o["shutdown_timeout"]),
        allow_hard_poweroff=bool(o["allow_hard_poweroff"]), certify=str(o["certify"]),
        probes=tuple(o["probes"]), ready_timeout=float(o["ready_timeout"]),
    )


def show_plan(m: Migration, run: RunbookParams) -> dict[str, Any]:
    """What go/no-go will see: the planner's prediction now, and the cycles so far."""
    from ..engine.cutover_steps import current_plan
    from .tables import read_journal

    p = current_plan(m, cutover_options(run), run.migration.downtime_budget)
    print(p.summary(), flush=True)
    print(p.advice, flush=True)
    try:
        from .dashboard import ipd, readable_cycles

        ipd().display(readable_cycles(cycles_frame(read_journal(m.workspace.journal.path))))
    except ImportError:
        pass
    return p.to_dict()


def cutover(m: Migration, run: RunbookParams) -> dict[str, Any]:
    """Run (or resume) the cutover under the workspace lock; returns its result record."""
    from ..engine.cutover import run_cutover

    note_run(m, run)
    with m.workspace:
        res = run_cutover(m, cutover_options(run))
    out = {"status": res.status, "attempt": res.attempt, "downtime_s": res.downtime,
           "predicted_downtime_s": res.predicted, "parts": res.parts,
           "warnings": res.warnings}
    m.reporter.event("cutover_result", **{k: v for k, v in out.items() if k != "parts"})
    return out


# --- audit outputs ---------------------------------------------------------------------------


@dataclass
class AuditOutputs:
    folder: Path
    files: list[Path]


def audit_folder(workspace: Path) -> Path:
    return Path(workspace) / "audit"


def save_audit(workspace: Path, *, budget: float | None = None,
               actual_downtime: float | None = None, show: bool = True,
               folder: Path | None = None) -> AuditOutputs:
    """Write cycles/steps CSV and the four figures to ``<workspace>/audit`` (or ``folder``)
    and display them: the evidence keeps plain files beside every widget."""
    from .tables import cutover_summary, read_journal

    records = read_journal(Path(workspace) / "journal.jsonl")
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
        from .dashboard import ipd

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
    try:
        from .dashboard import ipd

        ipd().display({RESULT_MIME: json.loads(text), "text/plain": text}, raw=True)
    except ImportError:
        pass
    return result


# --- small cell helpers ----------------------------------------------------------------------


def dashboard(run: RunbookParams) -> Reporter:
    """Show the live dashboard, seeded with the cycles already in the workspace journal."""
    from .dashboard import make_dashboard
    from .tables import read_journal

    p = run.migration
    history = read_journal(Path(p.workspace) / "journal.jsonl")
    title = f"{run.kind}: {p.vm} -> {p.target_name} ({run.change_id})"
    return make_dashboard(title, budget=p.downtime_budget, history=history)


def preflight(m: Migration) -> dict[str, Any]:
    """Run preflight (changes nothing) and show its checks as a table; raise on failure."""
    import pandas as pd

    from ..engine.preflight import run_preflight

    report = run_preflight(m, raise_on_failure=False)
    try:
        from .dashboard import ipd

        ipd().display(pd.DataFrame(report.to_dict()["checks"]))
    except ImportError:
        pass
    err = report.first_error()
    if err is not None:
        raise err
    return report.to_dict()


def finish(reporter: Reporter) -> None:
    """Plain table and PNG beside the widget (no-op for a plain-line reporter)."""
    from .dashboard import Dashboard

    if isinstance(reporter, Dashboard):
        reporter.finish()


def close(m: Migration) -> None:
    """Close both hosts' connections and data-plane handles."""
    from ..session import close_migration

    close_migration(m)
