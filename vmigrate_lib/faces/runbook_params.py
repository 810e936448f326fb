"""A runbook's parameters: which names it takes, how they are checked, where paths point.

papermill checks nothing about parameters (unknown ``-p`` names only warn), so the
validation cell compares the notebook's globals against the names the parameters
cell declared and stops on anything unknown or malformed.  A runbook's parameters
are the params file's top-level keys (one schema, :mod:`vmigrate_lib.params`, for
the CLI and both runbooks), plus two per-run decisions no params file should carry
silently: ``force`` (cutover: go on a no-go) and ``continue_change`` (continue a
workspace begun under another change ticket).

By hand the kernel runs in the notebook's folder: relative paths resolve against
the project root (:func:`vmigrate_lib.params.paths.project_root`), never there; and
Run All twice in one kernel works (the parameter names are never part of the
baseline, so the second run sees its parameters cell again).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ..params import MigrationParams, validate
from ..params.paths import project_root
from .runbook_guard import refuse_finished, refuse_other_change

#: The params file's top-level keys: every runbook takes all of them.
SCHEMA_KEYS: tuple[str, ...] = tuple(f.name for f in fields(MigrationParams))
#: Per-run parameters: never part of the params schema.
PER_RUN = frozenset({"force", "continue_change"})
#: Parameter names each runbook accepts (its parameters cell declares exactly these).
RUNBOOK_PARAMETERS: dict[str, frozenset[str]] = {
    "sync": frozenset((*SCHEMA_KEYS, "continue_change")),
    "cutover": frozenset((*SCHEMA_KEYS, "force", "continue_change")),
}
ALL_PARAMETERS = frozenset().union(*RUNBOOK_PARAMETERS.values())
_IGNORED = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


@dataclass(frozen=True)
class RunbookParams:
    """A runbook's checked parameters: the params file's, and the run's own decisions."""

    kind: str
    migration: MigrationParams
    force: bool = False  #: cutover runbook only: go even on a no-go (recorded as forced)
    continue_change: str = ""  #: the workspace's other change this run continues, if any

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
    """Names defined before the parameters cell (call in the first cell).  Parameter names
    are never among them: a second Run All in the same kernel sees them again."""
    return frozenset(k for k in namespace if k not in ALL_PARAMETERS)


def given_parameters(namespace: Mapping[str, Any], before: frozenset[str]) -> dict[str, Any]:
    """The names the parameters cell and papermill's injected cell defined."""
    return {
        k: v for k, v in namespace.items()
        if k not in before and not k.startswith("_") and k not in _IGNORED
        and not isinstance(v, (types.ModuleType, types.FunctionType, type))
    }


def _per_run(given: Mapping[str, Any]) -> tuple[bool, str]:
    """``force`` and ``continue_change``, checked (a rejected value is never repeated)."""
    force = given.get("force")
    force = False if force is None else force
    if not isinstance(force, bool):
        raise ParameterError("parameter force must be True or False",
                             hint="write force = True to go on a no-go, else leave it out",
                             parameter="force")
    cont = given.get("continue_change") or ""
    if not isinstance(cont, str):
        raise ParameterError("parameter continue_change must be a change reference",
                             hint="give the workspace's change, e.g. continue_change = "
                             "'CHG-12345', else leave it out", parameter="continue_change")
    return force, cont


def check_parameters(kind: str, given: Mapping[str, Any],
                     base_dir: Path | None = None) -> RunbookParams:
    """Check names, types and ranges of a runbook's parameters (or raise ParameterError).

    Everything but the per-run names is the params schema's
    (:func:`vmigrate_lib.params.validate`); a runbook also requires ``change_id`` and
    ``operator``.  A value of None (or "") means "not given": the schema's default applies.
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
    raw = {k: v for k, v in given.items() if k not in PER_RUN and v is not None and v != ""}
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
    force, cont = _per_run(given)
    return RunbookParams(kind, migration, force, cont)


def check_workspace_use(run: RunbookParams) -> None:
    """Refuse a finished migration's workspace, or another change's without
    ``continue_change`` (:mod:`.runbook_guard`); nothing is changed either way."""
    refuse_finished(run.kind, run.migration)
    refuse_other_change(run.migration, run.continue_change)


def validate_parameters(kind: str, namespace: Mapping[str, Any],
                        before: frozenset[str]) -> RunbookParams:
    """The validation cell: check, print one summary line, or stop with a clear message.
    Relative paths resolve against the project root, not the kernel's folder.  A refusal
    is said once, by the error the cell stops on (its one line)."""
    run = check_parameters(kind, given_parameters(namespace, before),
                           base_dir=project_root(Path.cwd()))
    check_workspace_use(run)
    print(run.summary(), flush=True)
    if run.continue_change:
        print(f"continuing the migration of change {run.continue_change} under "
              f"{run.change_id} (continue_change given)", flush=True)
    return run
