"""Under Airflow, a cutover task tried again after its VM's cutover was done succeeds and
says so (no lab, no Airflow needed: the task's vmigrate side is called as the DAG calls it).

Why it matters: Airflow runs a task again when a try's end was lost (its process killed
after the runbook's cutover cell, a start or state call that timed out under load, a
``seal`` that failed: every task has ``retries``).  The cutover runbook refuses a finished
workspace (``MigrationFinished``, :mod:`vmigrate_lib.faces.runbook_guard`), so such a retry
used to run the runbook, be refused, be sealed as a failed run, and mark the VM ``failed``
and the task failed (``AirflowFailException``) for a VM whose cutover was done.

What it proves: ``airflow_task begin VM cutover`` on a workspace whose cutover is done
answers "done" (no "go", nothing run: no kernel, no new evidence), records the VM ``done``
in the wave's state with the cutover's measured downtime and journals
``vm_cutover_already_done``; a cutover runbook that failed after the cutover was done
leaves the VM ``done`` (not ``failed``).  The workspace is made with the engine's own state
classes (a done cutover record), as a real cutover leaves it.  What only a real scheduler
shows: which try Airflow runs again and when (tests/wave/test_airflow.py kills the stack).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.wave.labwave import cut_over_workspace, done_vm_wave
from vmigrate_lib.engine.workspace import Journal
from vmigrate_lib.errors import MigrationFinished
from vmigrate_lib.faces.papermill_runner import injected
from vmigrate_lib.faces.runbook_params import check_parameters, check_workspace_use
from vmigrate_lib.wave.airflow_task import AirflowBook, begin, main, outcome
from vmigrate_lib.wave.spec import load_wave
from vmigrate_lib.wave.state import load


def test_retried_cutover_of_a_done_vm_succeeds(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    path = done_vm_wave(tmp_path)
    spec = load_wave(path)
    # what the runbook's validation cell does with this workspace: it refuses it
    checked = check_parameters("cutover", injected("cutover", dict(spec.vm_params["app1"])),
                               base_dir=path.parent)
    with pytest.raises(MigrationFinished, match="already cut over"):
        check_workspace_use(checked)
    before = sorted(p.name for p in (ws / "app1").iterdir())

    assert main([str(path), "--start-at", str(time.time()), "begin", "app1", "cutover"]) == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["go"] is False and said["done"] is True, said
    assert "already cut over (attempt 1" in said["why"]
    state = load(spec.wave_dir / "state.json")
    assert state is not None and state.vms["app1"].status == "done"
    assert state.vms["app1"].downtime_s == 4.5
    recs = list(Journal(spec.wave_dir / "journal.jsonl").records("vm_cutover_already_done"))
    assert [(r["vm"], r["attempt"]) for r in recs] == [("app1", 1)]
    assert sorted(p.name for p in (ws / "app1").iterdir()) == before  # nothing ran


def test_cutover_runbook_failing_after_the_cutover_leaves_the_vm_done(tmp_path: Path) -> None:
    path = done_vm_wave(tmp_path)
    book = AirflowBook(load_wave(path), time.time())
    said = outcome(book, "app1", "cutover", False, {}, "MigrationFinished: refusing the "
                   "cutover runbook: app1 was already cut over", final=True)
    assert said == "done"
    state = load(book.dir / "state.json")
    assert state is not None and state.vms["app1"].status == "done"
    assert "after the cutover was done" in state.vms["app1"].error


def test_retried_cutover_whose_attempt_rolled_back_is_not_tried_again(tmp_path: Path) -> None:
    """A cutover task's try was lost while its cutover rolled back on its own (failed
    probes: tests/wave/test_airflow.py's af9 run, the killed try's kernel finishing the
    attempt): the next try's ``begin`` finds the attempt started after the wave set the VM to
    ``cutover`` and rolled back, records the VM ``rolled_back`` with why, journals
    ``vm_cutover_already_over`` and answers no go (the DAG fails the task), instead of
    starting attempt 2, which would stop the source VM again.  Before: ``begin`` said go."""
    path = done_vm_wave(tmp_path)
    book = AirflowBook(load_wave(path), time.time())
    book.set("app1", "cutover")  # the lost try's begin
    time.sleep(0.01)
    cut_over_workspace(tmp_path / "ws" / "app1", "app1", "rolled_back", started=time.time())
    before = sorted(p.name for p in (tmp_path / "ws" / "app1").iterdir())
    said = begin(book, "app1", "cutover")
    assert said["go"] is False and said.get("rolled_back") is True, said
    assert "another attempt would stop app1 again" in said["why"]
    state = load(book.dir / "state.json")
    assert state is not None and state.vms["app1"].status == "rolled_back"
    recs = list(book.journal.records("vm_cutover_already_over"))
    assert [(r["vm"], r["status"]) for r in recs] == [("app1", "rolled_back")]
    assert sorted(p.name for p in (tmp_path / "ws" / "app1").iterdir()) == before


def test_an_earlier_rolled_back_rehearsal_does_not_stop_the_waves_cutover(tmp_path: Path) -> None:
    """A rehearsal rolled back before the wave (its attempt started before the wave set
    the VM to ``cutover``) is not this wave's outcome: ``begin`` says go."""
    path = done_vm_wave(tmp_path)
    cut_over_workspace(tmp_path / "ws" / "app1", "app1", "rolled_back",
                       started=time.time() - 600)
    book = AirflowBook(load_wave(path), time.time())
    book.set("app1", "warm")
    said = begin(book, "app1", "cutover")
    assert said["go"] is True, said
    said = begin(book, "app1", "cutover")  # a lost try's next one: still no outcome of its own
    assert said["go"] is True, said
