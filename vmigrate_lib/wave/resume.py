"""A wave's cutover taken up again: what the VM's workspace says happened meanwhile.

A runner (the local one resumed after a kill, or Airflow's next try of a task whose end was
lost) may find the VM's cutover already over: cut over, or rolled back on its own (failed
probes).  Neither must run the cutover again: the runbook refuses a finished workspace,
and a new attempt after a rollback would stop Alice a second time for a cutover nobody
asked to retry.  "This wave's cutover" is told from an earlier one (a rehearsal, rolled
back before the wave) by time: the attempt started after the wave set the VM to
``cutover`` (its journal's last ``vm_phase`` record for it).
"""

from __future__ import annotations

from ..engine.cutover_record import CutoverRecord
from ..engine.workspace import Journal


def cutover_began_at(journal: Journal, vm: str) -> float | None:
    """When the wave last set ``vm`` to ``cutover`` (epoch), from its journal."""
    began: float | None = None
    for rec in journal.records("vm_phase"):
        if rec.get("vm") == vm and rec.get("status") == "cutover":
            ts = rec.get("ts")
            began = float(ts) if isinstance(ts, (int, float)) else began
    return began


def rolled_back_since(journal: Journal, vm: str, co: CutoverRecord | None) -> bool:
    """The VM's latest cutover attempt rolled back, and it is this wave's (it started
    after the wave set the VM to ``cutover``): the outcome a lost try did not record.
    Callers ask only while the wave's state still says ``cutover``: once an outcome is
    recorded, a new start is the operator's choice (Airflow's clear)."""
    if co is None or co.status != "rolled_back" or co.started is None:
        return False
    began = cutover_began_at(journal, vm)
    return began is not None and co.started >= began


def rolled_back_why(vm: str, co: CutoverRecord) -> str:
    return (f"{vm}'s cutover attempt {co.attempt} rolled back "
            f"({co.reason or 'no reason recorded'}) in a run whose end was lost; not tried "
            f"again on its own, since another attempt would stop {vm} again: to try again, "
            f"clear the task (Airflow) or run the VM's cutover by hand")


__all__ = ["cutover_began_at", "rolled_back_since", "rolled_back_why"]
