"""The cutover's ``predelta`` step: one more delta cycle right before Alice is stopped.

The final delta holds everything Alice wrote since the last snapshot: the time
since the last sync, the go/no-go and the shutdown.  When the last sync is older
than a delta cycle would take, one more cycle while she still runs leaves only
its own duration and the shutdown to the final cycle, which runs with her off
(Veeam's planned failover does the same: an incremental run, then the shutdown,
then a second incremental; helpcenter.veeam.com/docs/backup/vsphere/planned_failover.html).  The go/no-go's prediction decided it
(:attr:`.planner.Plan.predelta`) and priced the downtime with it; this step does
what was predicted.  A last sync only seconds old is left as it is.
"""

from __future__ import annotations

from .cutover_steps import StepContext
from .cycle import run_cycle


def predelta(c: StepContext) -> None:
    """Run the delta cycle the go/no-go planned (Alice running), or journal why not."""
    pred = c.co.prediction or {}
    journal = c.m.workspace.journal
    if c.co.shutdown_requested_at is not None:
        journal.append("predelta", attempt=c.co.attempt, ran=False,
                       reason="the shutdown was already requested")
        return
    if not pred.get("predelta"):
        journal.append("predelta", attempt=c.co.attempt, ran=False,
                       reason="the last sync is recent enough (planner)")
        return
    rec = run_cycle(c.m).record
    journal.append("predelta", attempt=c.co.attempt, ran=True, cycle=rec.get("number"),
                   bytes_changed=rec.get("bytes_changed"), duration=rec.get("duration"),
                   predicted_s=pred.get("predelta_s"))


__all__ = ["predelta"]
