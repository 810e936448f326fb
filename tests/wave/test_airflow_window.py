"""Under Airflow, a cutover task that would start after its group's window ended does
not start (no lab, no Airflow needed: the task's vmigrate side is called as the DAG's
task calls it).

What it proves: ``airflow_task begin VM cutover`` after the window's end answers "go":
false with the reason, records the VM ``window_missed`` in the wave's state and journal,
and touches nothing of the VM (no workspace made: nothing ran, nothing powered off); the
same call for a VM whose window is still open answers "go": true.  The DAG's task then
raises AirflowSkipException (vmigrate_lib/wave/airflow_dag.py).  What only a real
scheduler shows: the skip itself (the lab Airflow test runs windows that stay open).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.wave.labwave import wave_file
from vmigrate_lib.engine.workspace import Journal
from vmigrate_lib.wave.airflow_task import main
from vmigrate_lib.wave.spec import load_wave
from vmigrate_lib.wave.state import load


def test_cutover_after_window_end_does_not_start(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    path = wave_file(tmp_path / "wave.yaml", tmp_path / "lab", ws,
                     [{"name": "late", "source": "esx-a", "destination": "esx-b", "group": "g"},
                      {"name": "open", "source": "esx-c", "destination": "esx-d",
                       "group": "h"}],
                     groups=[{"name": "g", "window": {"start": "+0s", "end": "+5s"}},
                             {"name": "h"}])
    start = time.time() - 60  # the wave started a minute ago: g's window ended at +5 s
    assert main([str(path), "--start-at", str(start), "begin", "late", "cutover"]) == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["go"] is False and "window missed" in said["why"]
    spec = load_wave(path)
    state = load(spec.wave_dir / "state.json")
    assert state is not None and state.vms["late"].status == "window_missed"
    phases = list(Journal(spec.wave_dir / "journal.jsonl").records("vm_phase"))
    assert [(r["vm"], r["status"]) for r in phases] == [("late", "window_missed")]
    assert not (ws / "late").exists()  # nothing of the VM was touched
    assert main([str(path), "--start-at", str(start), "begin", "open", "cutover"]) == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["go"] is True
