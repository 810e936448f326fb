"""What a runbook refuses before it touches anything: work that makes no sense now.

A workspace whose migration is cut over is finished: another sync would copy
Alice's stopped disks again while Bob runs and takes writes, and another cutover
would replay the old result as a new "OK" archive.  A workspace first run under one change
ticket is not silently continued under another: the runbook stops and names
both, and ``continue_change`` (the workspace's change, given per run) says that
continuing is meant.  Both checks read only ``state.json`` and the journal.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..engine.workspace import Workspace
from ..errors import ChangeMismatch, MigrationFinished
from ..params import MigrationParams


def _when(ts: object) -> str:
    if not isinstance(ts, (int, float)):
        return "an unrecorded time"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def refuse_finished(kind: str, p: MigrationParams, what: str = "runbook") -> None:
    """Raise :class:`MigrationFinished` if the workspace's cutover is done (``what``:
    "runbook" for ``vmigrate run``, "command" for the plain CLI commands)."""
    ws = Workspace(Path(p.workspace))
    state = ws.load() if ws.exists else None
    co = state.cutover if state is not None else None
    if co is None or co.status != "done":
        return
    downtime = (co.measured or {}).get("downtime_s")
    took = f", downtime {downtime:.1f} s" if isinstance(downtime, (int, float)) else ""
    raise MigrationFinished(
        f"refusing the {kind} {what}: {p.vm} was already cut over to {p.target_name} on "
        f"{p.destination.host} at {_when(co.ended)} (attempt {co.attempt}{took}) by the "
        f"migration in workspace {p.workspace}",
        hint="that migration is finished (vmigrate status shows it); to migrate again, give "
        "a new workspace (e.g. workspace: workspaces/" + f"{p.vm}-2) and start with the sync "
        f"{what}", workspace=str(p.workspace), ended=co.ended, attempt=co.attempt)


def workspace_change(p: MigrationParams) -> tuple[str, float | None] | None:
    """The change the workspace's runbook runs belong to (the last one named), and when."""
    last: tuple[str, float | None] | None = None
    for rec in Workspace(Path(p.workspace)).journal.records("runbook"):
        change = rec.get("change_id")
        if isinstance(change, str) and change:
            ts = rec.get("ts")
            last = (change, float(ts) if isinstance(ts, (int, float)) else None)
    return last


def refuse_other_change(p: MigrationParams, continue_change: str) -> str:
    """Raise :class:`ChangeMismatch` if the workspace belongs to another change and
    ``continue_change`` does not name it; returns the change continued ("" if none)."""
    owner = workspace_change(p)
    if owner is None or owner[0] == p.change_id:
        return ""
    if continue_change == owner[0]:
        return owner[0]
    raise ChangeMismatch(
        f"workspace {p.workspace} belongs to change {owner[0]} (last run {_when(owner[1])}), "
        f"not {p.change_id}",
        hint=f"to continue that migration under {p.change_id}, give continue_change = "
        f"{owner[0]!r} (it is journaled); for a new migration use a new workspace",
        workspace=str(p.workspace), workspace_change=owner[0], change_id=p.change_id)
