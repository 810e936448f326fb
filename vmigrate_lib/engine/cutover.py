"""The cutover state machine: go/no-go, shutdown, final sync, register, power on, probe.

Each step is journaled (type ``step``: name, status, start, end) and recorded in
``state.cutover`` (a typed ``CutoverRecord``), so a killed run resumes from the
recorded step.  The rules that keep Alice's data safe:

* any failure before Bob is ready rolls back by itself: Bob off and
  unregistered (his files stay), Alice powered on again, untouched; but once
  Bob has run past ``rollback_grace`` (he may have served writes, e.g. a guest
  without Tools that never counts as ready) the cutover stops (``stopped``) and
  the operator decides;
* once Bob is ready he may have taken writes, so a failing probe only stops
  and tells; :func:`run_rollback` then needs ``confirm_data_loss``;
* before every power-on the other copy is proven off: never two running.

Downtime is measured from the shutdown request to Bob ready and recorded
beside the planner's prediction (``cutover_measured``), so the next plan uses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..errors import (
    BobMayHaveServed,
    CutoverError,
    CutoverNoGo,
    Interrupted,
    ProbeFailed,
    VmigrateError,
)
from ..modes import CutoverStatus
from ..units import fmt_secs
from . import cutover_steps as steps
from .claim import release_after_cutover
from .context import Migration
from .cutover_predelta import predelta
from .cutover_retire import retire_source
from .cutover_rollback import rollback
from .cutover_steps import CutoverOptions, StepContext
from .planner import MEASURED_TYPE
from .progress import PhaseReached, StepChanged
from .state import CutoverRecord, StepRecord

STEPS: tuple[tuple[str, Callable[[StepContext], None]], ...] = (
    ("go_no_go", steps.go_no_go),
    ("predelta", predelta),  # one more delta right before Alice stops, if planned
    ("shutdown", steps.shutdown),
    ("final_sync", steps.final_sync),
    ("certify", steps.certify),
    ("copy_files", steps.copy_files),
    ("retire_source", retire_source),  # cutover.identity retire-source only
    ("register", steps.register),
    ("power_on", steps.power_on),
    ("wait_ready", steps.wait_ready),
    ("probes", steps.probes),
)
STEP_NAMES = tuple(name for name, _ in STEPS) + ("done",)


@dataclass(frozen=True)
class CutoverHooks:
    """Callables run around every step, given the step's name: a seam for callers that
    must act between steps (tests kill the process there, as a crash would).

    ``before_step`` runs before the step is recorded as started; ``after_step`` after
    it is recorded as done.  Nothing installs hooks but the caller of
    :func:`run_cutover`: no environment variable or setting reaches them."""

    before_step: Callable[[str], None] | None = None
    after_step: Callable[[str], None] | None = None


NO_HOOKS = CutoverHooks()


@dataclass
class CutoverResult:
    status: CutoverStatus  #: done | probes_failed | rolled_back
    attempt: int
    downtime: float | None = None  #: measured, seconds
    predicted: float | None = None  #: the planner's prediction at go/no-go, seconds
    parts: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    record: CutoverRecord | None = None  #: the attempt's record in ``state.json``


def _result(co: CutoverRecord) -> CutoverResult:
    meas = co.measured or {}
    return CutoverResult(
        status=co.status, attempt=co.attempt,
        downtime=meas.get("downtime_s"), predicted=(co.prediction or {}).get(
            "predicted_downtime"),
        parts={k: v for k, v in meas.items() if isinstance(v, (int, float))},
        warnings=list(co.warnings), record=co,
    )


def _begin(m: Migration, opts: CutoverOptions) -> CutoverRecord:
    state = m.workspace.state
    co = state.cutover
    if co is not None and co.status in ("running", "probes_failed", "stopped", "rolling_back",
                                        "done"):
        if co.status != "rolling_back":
            m.workspace.journal.append("cutover_resumed", attempt=co.attempt, step=co.step)
        return co
    prev = co
    attempt = (prev.attempt if prev else 0) + 1
    co = CutoverRecord(attempt=attempt, status="running", step=STEPS[0][0],
                       started=time.time(), options=opts.to_dict(), operator=m.params.operator,
                       history=list(prev.history) if prev else [])
    if prev is not None:
        co.history.append({"attempt": prev.attempt, "status": prev.status, "step": prev.step,
                           "started": prev.started, "ended": prev.ended, "reason": prev.reason})
    state.cutover = co
    m.workspace.save()
    m.workspace.journal.append("cutover_start", attempt=attempt, options=opts.to_dict(),
                               operator=m.params.operator)
    return co


def run_cutover(m: Migration, opts: CutoverOptions | None = None, *,
                hooks: CutoverHooks | None = None) -> CutoverResult:
    """Run (or resume) the cutover; the caller holds the workspace lock.

    Without ``opts``: the params file's ``cutover`` section as it stands.
    ``hooks`` run around every step (see :class:`CutoverHooks`).
    """
    opts = opts or CutoverOptions.from_params(m.params.cutover)
    if not m.workspace.exists:
        raise CutoverNoGo(f"no migration in workspace {m.workspace.root}", hint="run vmigrate sync first")
    m.workspace.init(m.identity())
    co = _begin(m, opts)
    if co.status == "done":
        return _result(co)
    ctx = StepContext(m, opts, co)
    if co.status == "rolling_back":
        rollback(ctx, reason=co.reason or "resumed rollback", auto=True)
        raise CutoverError(f"attempt {co.attempt} had failed and is now rolled back: "
                           f"{co.reason}", hint="run vmigrate cutover again for a new attempt",
                           attempt=co.attempt)
    co.status = "running"
    for name, func in STEPS:
        rec = co.step_record(name)
        if rec.status == "done" and not _decided_again(co, name):
            continue
        _run_step(ctx, name, func, rec, hooks or NO_HOOKS)
    return _finish(ctx)


def _decided_again(co: CutoverRecord, name: str) -> bool:
    """A go/no-go that passed is taken again on a resume until Alice was asked to stop:
    until then nothing was changed, and the decision must be fresh."""
    return name == "go_no_go" and "shutdown" not in co.steps


def _run_step(c: StepContext, name: str, func: Callable[[StepContext], None],
              rec: StepRecord, hooks: CutoverHooks) -> None:
    m, co = c.m, c.co
    if hooks.before_step is not None:
        hooks.before_step(name)
    co.step = name
    rec.status, rec.start, rec.end = "running", time.time(), None
    rec.runs += 1
    m.workspace.save()
    m.workspace.journal.append("step", attempt=co.attempt, name=name, status="started",
                               start=rec.start)
    m.reporter.event(StepChanged(name=name, status="started"))
    try:
        func(c)
    except BaseException as exc:
        rec.status, rec.end, rec.error = "failed", time.time(), steps.describe(exc)
        m.workspace.save()
        m.workspace.journal.append("step", attempt=co.attempt, name=name, status="failed",
                                   start=rec.start, end=rec.end, error=rec.error)
        _on_failure(c, name, exc)
    start = rec.start or time.time()
    end = rec.end = time.time()
    rec.status = "done"
    m.workspace.save()
    m.workspace.journal.append("step", attempt=co.attempt, name=name, status="done",
                               start=start, end=end, seconds=end - start)
    m.reporter.event(StepChanged(name=name, status="done", seconds=round(end - start, 3)))
    if hooks.after_step is not None:
        hooks.after_step(name)


def _on_failure(c: StepContext, name: str, exc: BaseException) -> NoReturn:
    """Decide: stay (interrupt), stop (no-go, probes) or roll back (anything before ready).
    Always raises."""
    co = c.co
    if isinstance(exc, (KeyboardInterrupt, Interrupted)):
        c.m.workspace.journal.append("cutover_interrupted", attempt=co.attempt, step=name)
        raise Interrupted(f"cutover interrupted at step {name}",
                          hint="run vmigrate cutover to continue, or vmigrate rollback",
                          step=name) from exc
    if name == "go_no_go":
        co.status, co.ended = "aborted", time.time()
        co.reason = str(steps.describe(exc).get("message"))
        c.save()
        c.m.workspace.journal.append("cutover_aborted", attempt=co.attempt, error=steps.describe(exc))
        if isinstance(exc, VmigrateError):
            raise exc
        raise CutoverNoGo(f"go/no-go failed: {exc}") from exc
    if isinstance(exc, ProbeFailed) or co.bob_ready_at:
        co.status = "probes_failed"
        c.save()
        c.m.workspace.journal.append("cutover_stopped", attempt=co.attempt, step=name,
                                     error=steps.describe(exc))
        raise exc
    cause = steps.describe(exc)
    if c.bob_may_have_served():
        _stop(c, name, exc)
    rollback(c, reason=f"step {name} failed: {cause.get('message')}", auto=True)
    # keep the cause's own advice (e.g. "use the SSH fallback" for a licence refusal)
    advice = f"{cause['hint']}; then " if cause.get("hint") else "fix the cause, then "
    raise CutoverError(
        f"cutover failed at step {name} and was rolled back: {c.alice} is running again, "
        f"unchanged ({cause.get('message')})",
        hint=advice + "run vmigrate sync and vmigrate cutover again",
        step=name, cause=cause) from exc


def _stop(c: StepContext, name: str, exc: BaseException) -> NoReturn:
    """Bob has run past the grace period: never roll back by ourselves."""
    co, ran = c.co, c.bob_ran_for() or 0.0
    cause = steps.describe(exc)
    co.status, co.reason = "stopped", f"step {name} failed: {cause.get('message')}"
    c.save()
    c.m.workspace.journal.append("cutover_stopped", attempt=co.attempt, step=name, error=cause,
                                 bob_ran_s=round(ran, 1), grace_s=c.opts.rollback_grace)
    raise BobMayHaveServed(
        f"step {name} failed after {c.bob} had run {fmt_secs(ran)} (more than the "
        f"{fmt_secs(c.opts.rollback_grace)} grace period): {c.bob} may have served writes, "
        f"so nothing was rolled back ({cause.get('message')})",
        step=name, cause=cause, vm=c.bob) from exc


def _finish(c: StepContext) -> CutoverResult:
    m, co = c.m, c.co
    if co.status != "done":
        req = float(co.shutdown_requested_at or 0.0)
        off = co.alice_off_at if co.alice_off_at is not None else req
        reg = co.register_started_at if co.register_started_at is not None else off
        ready = float(co.bob_ready_at or 0.0)
        resumed = any(s.runs > 1 for n, s in co.steps.items() if n != "go_no_go")
        meas = {"downtime_s": ready - req, "shutdown_s": off - req, "final_copy_s": reg - off,
                "boot_s": ready - reg}
        pred = co.prediction or {}
        co.measured = meas
        # Alice is free for another migration (claim.py), under the name she has now
        warning = release_after_cutover(m, c.alice_now)
        if warning:
            co.warnings.append(warning)
        co.status, co.step, co.ended = "done", "done", time.time()
        m.workspace.save()
        if not resumed and not co.hard_poweroff:
            m.workspace.journal.append(MEASURED_TYPE, attempt=co.attempt, **meas)
        m.workspace.journal.append(
            "cutover_done", attempt=co.attempt, measured=meas, resumed=resumed,
            predicted={k: pred.get(k) for k in ("predicted_downtime", "shutdown", "final_copy",
                                                 "boot", "final_bytes")},
            forced=(co.go or {}).get("forced", False), ready=c.ready_mode,
            warnings=list(co.warnings))
        m.reporter.event(PhaseReached(phase="cutover done",
                                      detail=f"downtime {fmt_secs(meas['downtime_s'])} (predicted "
                                             f"{fmt_secs(float(pred.get('predicted_downtime') or 0.0))})"))
    return _result(co)


def run_rollback(m: Migration, *, confirm_data_loss: bool = False) -> CutoverResult:
    """Go back to Alice: Bob off and unregistered, Alice on.  Idempotent."""
    if not m.workspace.exists:
        raise CutoverNoGo(f"no migration in workspace {m.workspace.root}")
    m.workspace.init(m.identity())
    co = m.workspace.state.cutover
    if co is None:
        raise CutoverNoGo("no cutover was started in this workspace: nothing to roll back",
                          hint="Alice was never stopped by vmigrate")
    ctx = StepContext(m, CutoverOptions(**_stored_opts(co)), co)
    if co.status in ("rolled_back", "aborted"):
        return _result(co)
    rollback(ctx, reason="requested by the operator", auto=False,
             confirm_data_loss=confirm_data_loss)
    return _result(co)


def _stored_opts(co: CutoverRecord) -> dict[str, Any]:
    raw = dict(co.options or {})
    raw["probes"] = tuple(raw.get("probes") or ())
    known = CutoverOptions.__dataclass_fields__
    return {k: v for k, v in raw.items() if k in known}


__all__ = ["STEP_NAMES", "CutoverHooks", "CutoverOptions", "CutoverResult", "run_cutover",
           "run_rollback"]
