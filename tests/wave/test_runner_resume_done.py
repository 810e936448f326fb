"""The local wave runner, resumed after a VM's cutover was done but before the wave's
state said so (the runner killed between the cutover's end and its state save), records
the VM done and runs nothing (no lab needed: the runner's own method on a workspace made
with the engine's classes, as a done cutover leaves it).

Why it matters: the cutover runbook refuses a finished workspace (``MigrationFinished``,
:mod:`vmigrate_lib.faces.runbook_guard`), so the resumed runner used to run it, be
refused, and mark a cut-over VM ``failed`` in the wave's state and report.  The Airflow
side had the same defect (tests/wave/test_airflow_retry.py).  What only a real host shows:
nothing here; a real wave's kill points are exercised by tests/wave/test_lab_wave.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.wave.labwave import cut_over_workspace, done_vm_wave
from vmigrate_lib.engine.workspace import Journal
from vmigrate_lib.wave.runner import WaveRunner
from vmigrate_lib.wave.spec import load_wave
from vmigrate_lib.wave.state import load


def test_resumed_runner_records_a_done_cutover_and_runs_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    path = done_vm_wave(tmp_path)
    before = sorted(p.name for p in (ws / "app1").iterdir())
    said: list[str] = []
    runner = WaveRunner(load_wave(path), say=said.append)
    runner.state = runner.prepare()
    runner.set("app1", "cutover")  # where the killed run left it
    runner.cut_over("app1")
    state = load(runner.dir / "state.json")
    assert state is not None and state.vms["app1"].status == "done", (state, said)
    assert state.vms["app1"].downtime_s == 4.5
    recs = list(Journal(runner.dir / "journal.jsonl").records("vm_cutover_already_done"))
    assert [(r["vm"], r["attempt"], r["runner"]) for r in recs] == [("app1", 1, "local")]
    assert sorted(p.name for p in (ws / "app1").iterdir()) == before  # nothing ran


def test_resumed_runner_keeps_a_cutover_that_rolled_back_rolled_back(tmp_path: Path) -> None:
    """Resumed after the VM's cutover rolled back on its own (failed probes) but before the
    wave's state said so: the VM is recorded ``rolled_back`` with why and nothing runs (a
    second attempt would stop the source VM again).  Before: the runner ran the cutover
    runbook again."""
    path = done_vm_wave(tmp_path)
    runner = WaveRunner(load_wave(path), say=lambda _s: None)
    runner.state = runner.prepare()
    runner.set("app1", "cutover")
    time.sleep(0.01)
    cut_over_workspace(tmp_path / "ws" / "app1", "app1", "rolled_back", started=time.time())
    before = sorted(p.name for p in (tmp_path / "ws" / "app1").iterdir())
    runner.cut_over("app1")
    state = load(runner.dir / "state.json")
    assert state is not None and state.vms["app1"].status == "rolled_back", state
    assert "rolled back (probes failed: app check)" in state.vms["app1"].error
    assert sorted(p.name for p in (tmp_path / "ws" / "app1").iterdir()) == before
