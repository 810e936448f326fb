"""Rollback: Bob off and unregistered (files kept), Alice powered on again, untouched.

Alice's disks were only read by the final cycle, so powering her on gives back
exactly the VM she was.  Bob's disks are another matter: if he ever ran, he
wrote to them (logs at boot, clients after ready), so the next sync must not
trust the change ids from before: his disks are marked ``untrusted`` and get a
hash-compare.  Each sub-step checks the world first, so a rollback can be
re-run after a crash at any point.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..control.host import PowerState
from ..errors import CutoverError, PowerError, RollbackRefused, VmigrateError
from .cutover_retire import restore_source
from .cutover_steps import StepContext, bob_is_ours, describe
from .progress import PhaseReached


def rollback(c: StepContext, *, reason: str, auto: bool, confirm_data_loss: bool = False) -> None:
    m, co = c.m, c.co
    if c.bob_may_have_served() and not auto and not confirm_data_loss:
        since = co.bob_ready_at or co.bob_powered_on_at or time.time()
        raise RollbackRefused(
            f"{c.bob} has been running since {time.ctime(float(since))}: "
            f"rolling back loses every write made on him",
            vm=c.bob, ready_at=co.bob_ready_at, powered_on_at=co.bob_powered_on_at)
    first = co.status != "rolling_back"
    co.status, co.reason = "rolling_back", reason
    c.save()
    if first:
        m.workspace.journal.append("rollback_start", attempt=co.attempt, reason=reason,
                                   auto=auto, confirmed_data_loss=confirm_data_loss)
    m.reporter.event(PhaseReached(phase="rollback", detail=reason))
    _sub(c, "rollback_bob_off", _bob_off)
    _sub(c, "rollback_unregister", _unregister)
    _sub(c, "rollback_restore_source", restore_source)  # her name, NICs, autostart
    _sub(c, "rollback_alice_on", _alice_on)
    if c.bob_may_have_served():
        c.note(f"rolled back after {c.bob} ran: writes made on {c.bob} are lost")
    co.status, co.ended = "rolled_back", time.time()
    c.save()
    m.workspace.journal.append("cutover_rolled_back", attempt=co.attempt, reason=reason,
                               warnings=list(co.warnings))


def _sub(c: StepContext, name: str, func: Callable[[StepContext], None]) -> None:
    t0 = time.time()
    try:
        func(c)
    except VmigrateError as exc:
        c.m.workspace.journal.append("step", attempt=c.co.attempt, name=name, status="failed",
                                     start=t0, end=time.time(), error=describe(exc))
        raise
    c.m.workspace.journal.append("step", attempt=c.co.attempt, name=name, status="done",
                                 start=t0, end=time.time())


def _bob_off(c: StepContext) -> None:
    m = c.m
    if not (c.co.registering or c.co.registered) or not bob_is_ours(c):
        return
    if m.dest.power_state(c.bob) != PowerState.OFF:
        m.dest.power_off(c.bob)
    if m.dest.power_state(c.bob) != PowerState.OFF:
        raise CutoverError(f"{c.bob} is still on after power-off", hint="power him off by hand, "
                           "then run vmigrate rollback again", vm=c.bob)


def _unregister(c: StepContext) -> None:
    m, state = c.m, c.m.workspace.state
    if c.co.bob_powered_on:
        for key in state.disks:
            state.mark_untrusted(key, f"{c.bob} ran on the copy during cutover attempt "
                                 f"{c.co.attempt}; his writes are not in the change ids")
    if (c.co.registering or c.co.registered) and bob_is_ours(c):
        m.dest.unregister_vm(c.bob)
    c.co.registered = False
    c.co.registering = False
    c.save()


def _alice_on(c: StepContext, attempts: int = 3) -> None:
    """Power Alice on (Bob proven off first) and wait until she is ready again."""
    m = c.m
    for _ in range(attempts):
        if m.dest.vm_exists(c.bob) and bob_is_ours(c) and \
                m.dest.power_state(c.bob) != PowerState.OFF:
            raise CutoverError(f"{c.bob} is on: refusing to power {c.alice} on", vm=c.bob)
        if m.source.power_state(c.alice) == PowerState.OFF:
            m.source.power_on(c.alice)
        try:
            if c.ready_mode == "power-and-probes":  # as go/no-go chose: Tools may not run
                m.source.wait_running(c.alice, c.opts.ready_timeout)
            else:
                m.source.wait_ready(c.alice, c.opts.ready_timeout)
            return
        except PowerError:
            continue  # she was still finishing a shutdown asked for earlier: start her again
    raise CutoverError(f"{c.alice} did not come back up after {attempts} power-ons",
                       hint="check her on the source host", vm=c.alice)
