"""The cutover dashboard shows a step checklist and a downtime clock (issue 14 item 9).

Before: each step was a raw line ("step: name=go_no_go, status=started") in a <pre>
block, with no list of what is left and no clock.  Real ipywidgets fed the engine's own
StepChanged / CutoverFinished events in the engine's step order; no ESXi needed.
"""

from __future__ import annotations

import io

from vmigrate_lib.audit.checklist import CUTOVER_STEPS
from vmigrate_lib.audit.dashboard import Dashboard
from vmigrate_lib.engine.cutover import STEP_NAMES
from vmigrate_lib.engine.progress import CutoverFinished, StepChanged


def test_the_checklist_names_the_engines_steps() -> None:
    assert (*CUTOVER_STEPS, "done") == STEP_NAMES


def test_checklist_and_downtime_clock() -> None:
    d = Dashboard("cutover", headless=False, stream=io.StringIO())
    d.event(StepChanged(name="go_no_go", status="started"))
    assert "no downtime yet" in d.steps.value and "&#9654; go_no_go running" in d.steps.value
    assert "&middot; wait_ready" in d.steps.value  # what is left is listed
    assert "retire_source" not in d.steps.value  # an optional step, not asked for
    d.event(StepChanged(name="go_no_go", status="done", seconds=0.2))
    d.event(StepChanged(name="shutdown", status="started"))
    assert "and counting" in d.steps.value and "&#10003; go_no_go" in d.steps.value
    d.event(StepChanged(name="wait_ready", status="done", seconds=1.0))
    assert "and counting" not in d.steps.value
    d.event(CutoverFinished({"status": "done", "downtime_s": 4.6}))
    assert "downtime 4.6 s (measured" in d.steps.value
    assert "name=" not in d.steps.value  # no raw event dump


def test_a_failure_marks_the_running_step() -> None:
    d = Dashboard("cutover", headless=False, stream=io.StringIO())
    d.event(StepChanged(name="go_no_go", status="started"))
    d.failed("NoGo: predicted downtime 3m over the budget 2m")
    assert "&#10007; go_no_go FAILED" in d.steps.value and "FAILED" in d.status.value
