"""The cutover's ``retire_source`` step and its undoing (``cutover.identity: retire-source``).

Runs after Alice is off and her files are copied, before Bob is registered under
her name: the source host renames her, keeps her NICs from connecting at
power-on and takes her out of autostart (:meth:`Host.retire_vm`).  What the host
found is saved in ``state.cutover.retire`` before anything changes, so a killed
step runs again from the same plan, and a rollback (:func:`restore_source`, after
Bob is unregistered, before Alice powers on) puts back exactly what was there.
"""

from __future__ import annotations

from ..control.host import RetirePlan
from ..errors import CutoverError
from .cutover_steps import StepContext
from .identity import retire_note, retired_name
from .progress import PhaseReached


def retire_source(c: StepContext) -> None:
    """Alice renamed and parked, so that Bob can take her name (idempotent)."""
    m, co = c.m, c.co
    if m.params.cutover.identity != "retire-source":
        return
    if co.retire is None:
        plan = m.source.retire_plan(c.alice, retired_name(m), retire_note(m))
        if plan is None:
            raise CutoverError(f"host {m.params.source.host} cannot retire {c.alice}",
                               hint="set cutover.identity: new-name and a dest_name",
                               step="retire_source")
        co.retire = {**plan.to_dict(), "state": "planned"}
        c.save()  # before anything changes: a resume or a rollback needs what was there
        m.workspace.journal.append("source_retire_planned", attempt=co.attempt, **co.retire)
    plan = RetirePlan.from_dict(co.retire)
    m.reporter.event(PhaseReached(phase="retire source",
                                  detail=f"{plan.name} becomes {plan.new_name}"))
    m.source.retire_vm(plan)
    co.retire["state"] = "retired"
    c.save()
    m.workspace.journal.append("source_retired", attempt=co.attempt, name=plan.name,
                               new_name=plan.new_name)


def restore_source(c: StepContext) -> None:
    """Rollback: Alice's name, NICs and autostart as the plan found them (idempotent)."""
    r = c.co.retire
    if not r or r.get("state") == "restored":
        return
    plan = RetirePlan.from_dict(r)
    c.m.source.restore_vm(plan)
    r["state"] = "restored"
    c.save()
    c.m.workspace.journal.append("source_restored", attempt=c.co.attempt, name=plan.name,
                                 was=plan.new_name)


__all__ = ["restore_source", "retire_source"]
