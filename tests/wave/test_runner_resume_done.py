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

import subprocess
import sys
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


#: A runbook kernel of the killed run: it holds the workspace (its lock), ends the cutover
#: a moment later, and lets go (argv: the workspace folder).
KERNEL = r'''
import sys, time
from pathlib import Path
from vmigrate_lib.engine.workspace import Workspace
root = Path(sys.argv[1])
with Workspace(root) as ws:
    ws.load()
    print("holding", flush=True)
    time.sleep(1.5)
    ws.state.cutover.status = ws.state.cutover.step = "done"
    ws.state.cutover.ended = time.time()
    ws.state.cutover.measured = {"downtime_s": 3.5}
    ws.save()
'''


def test_resumed_runner_waits_for_the_killed_runs_kernel_then_finds_it_done(
        tmp_path: Path) -> None:
    """Resumed while the killed run's cutover kernel still holds the workspace with the
    cutover ``running`` (SIGKILL of ``wave run`` leaves its children to end their cell), and
    that kernel ends it: the runner waits for the workspace, then records the VM done and
    runs nothing.  Before: it read ``running`` before waiting, ran the cutover runbook once
    the workspace was free, was refused ("already cut over") and marked the VM failed (seen
    in tests/wave/test_lab_wave.py, 2026-12-02: db2 failed, its cutover done)."""
    ws = tmp_path / "ws"
    path = done_vm_wave(tmp_path)
    cut_over_workspace(ws / "app1", "app1", "running", started=time.time())
    runner = WaveRunner(load_wave(path), say=lambda _s: None)
    runner.state = runner.prepare()
    runner.set("app1", "cutover")
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL, str(ws / "app1")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout is not None and kernel.stdout.readline() == "holding\n"
        before = sorted(p.name for p in (ws / "app1").iterdir())
        runner.cut_over("app1")
    finally:
        assert kernel.wait(30) == 0
    state = load(runner.dir / "state.json")
    assert state is not None and state.vms["app1"].status == "done", state
    assert state.vms["app1"].downtime_s == 3.5
    journal = Journal(runner.dir / "journal.jsonl")
    assert [r["vm"] for r in journal.records("workspace_waited")] == ["app1"]
    assert [r["vm"] for r in journal.records("vm_cutover_already_done")] == ["app1"]
    assert sorted(p.name for p in (ws / "app1").iterdir()) == before  # no runbook ran
