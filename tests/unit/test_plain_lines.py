"""Headless output (papermill, logs) reads as sentences, once each.

Before (jupyter-ux.md item 10): raw dumps beside the human lines ("step: name=go_no_go,
status=started", "sync_done: cycles=2, converged=True", "prediction: cycle=1, ...") and the
"100%" line of a pass printed again each time the pass reported its end.
"""

from __future__ import annotations

import io

from vmigrate_lib.engine.progress import (
    CutoverFinished,
    CycleFailed,
    LineReporter,
    PredictionMade,
    StepChanged,
    SyncFinished,
    format_event,
)


def test_runbook_events_are_sentences_not_dumps() -> None:
    lines = [format_event(e) for e in (
        StepChanged("go_no_go", "started"),
        StepChanged("shutdown", "done", 2.5),
        SyncFinished(cycles=2, converged=True),
        PredictionMade({"cycle": 1, "predicted_downtime": 4.2, "budget": 30.0,
                        "converged": True, "detail": "x"}),
        CutoverFinished({"status": "done", "attempt": 1, "downtime_s": 3.1,
                         "predicted_downtime_s": 3.4, "warnings": []}),
        CycleFailed(number=3, status="failed", error="disk full"),
    )]
    assert lines == [
        "step go_no_go: started",
        "step shutdown: done in 2.5 s",
        "sync finished after 2 cycle(s): converged",
        "prediction after cycle 1: downtime 4.2 s vs budget 30.0 s: CONVERGED",
        "cutover attempt 1: done, downtime 3.1 s, predicted 3.4 s",
        "cycle 3 failed: disk full",
    ], lines
    assert not [ln for ln in lines if "=" in ln]


def test_a_pass_ends_with_one_hundred_percent_line() -> None:
    out = io.StringIO()
    rep = LineReporter(out, min_interval=5.0)
    rep.progress(0, 100, 1.0)
    rep.progress(100, 100, 1.0)
    rep.progress(100, 100, 1.0)  # the pass reports its end again (copy, then flush)
    rep.progress(50, 200, 1.0)   # the next pass
    rep.progress(200, 200, 1.0)
    hundred = [ln for ln in out.getvalue().splitlines() if "100.0%" in ln]
    assert len(hundred) == 2, out.getvalue()
