"""The plan's runbook overhead measured by the wave's own runs (wave/calibrate.py).

What it proves: from a wave journal and the VMs' workspace journals, each sync phase
gives its time minus the cycles it ran, each cutover phase its time minus the downtime it
measured; a phase across a resume of the wave run is not a sample (it holds the time the
run was down); an ``estimate.runbook_overhead`` in the file wins over the measurement.
The journals here are written record by record with the engine's Journal; the lab wave
test (test_lab_wave.py) measures it on a real run.  What only real hosts would show: the
overhead of a runbook against vCenter or ESXi (connect, preflight's round trips), which is
what this measures there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.wave.labwave import wave_file
from vmigrate_lib.engine.workspace import Journal
from vmigrate_lib.wave.calibrate import measured_overhead, samples
from vmigrate_lib.wave.planning import make_plan
from vmigrate_lib.wave.spec import WaveSpec, load_wave
from vmigrate_lib.wave.state import VmRun, WaveState, save


def _spec(tmp_path: Path, **top: Any) -> WaveSpec:
    tmp_path.mkdir(parents=True, exist_ok=True)
    vms = [{"name": "db1", "source": "esx-a", "destination": "esx-b", "group": "g"},
           {"name": "db2", "source": "esx-c", "destination": "esx-d", "group": "g"}]
    path = wave_file(tmp_path / "wave.yaml", tmp_path / "lab", tmp_path / "ws", vms,
                     groups=[{"name": "g"}], **top)
    return load_wave(path)


def _phase(j: Journal, vm: str, status: str, ts: float) -> None:
    j.append("vm_phase", vm=vm, status=status, source="a", destination="b", ts=ts)


def _cycle(spec: WaveSpec, vm: str, started: float, duration: float) -> None:
    ws = Path(spec.vm_params[vm]["workspace"])
    ws.mkdir(parents=True, exist_ok=True)
    Journal(ws / "journal.jsonl").append("cycle", kind="delta", status="ok", number=1,
                                         started=started, duration=duration)


def test_phase_time_minus_copies_and_downtime(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    spec.wave_dir.mkdir(parents=True)
    j = Journal(spec.wave_dir / "journal.jsonl")
    _phase(j, "db2", "syncing", 1000.0)
    j.append("wave_resumed", wave=spec.name, ts=1010.0)  # killed and resumed: no sample
    _phase(j, "db2", "syncing", 1011.0)
    _phase(j, "db2", "warm", 1031.0)  # 20 s, no copies recorded: 20 s
    _phase(j, "db1", "syncing", 1020.0)
    _cycle(spec, "db1", 1025.0, 30.0)  # seed
    _cycle(spec, "db1", 1060.0, 4.0)  # a delta
    _cycle(spec, "db1", 2000.0, 9.0)  # after the phase: not counted
    _phase(j, "db1", "warm", 1070.0)  # 50 s, 34 s of copies: 16 s
    _phase(j, "db1", "cutover", 1100.0)
    _phase(j, "db1", "done", 1130.0)  # 30 s, 12 s down: 18 s
    save(spec.wave_dir / "state.json",
         WaveState(spec.name, 1000.0, "digest", {"db1": VmRun("done", downtime_s=12.0),
                                       "db2": VmRun("warm")}))
    assert sorted(samples(spec)) == [16.0, 18.0, 20.0]
    got = measured_overhead(spec)
    assert got is not None and (got.seconds, got.samples) == (18.0, 3)
    res = make_plan(spec, start_at=0.0, preflight=False)
    assert res.plan.runbook_overhead == 18.0 and "median of 3 runbook runs" in res.plan.notes[0]


def test_the_file_wins_and_no_run_means_the_default(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    assert measured_overhead(spec) is None  # nothing ran yet
    assert make_plan(spec, start_at=0.0, preflight=False).plan.runbook_overhead == 60.0
    fixed = _spec(tmp_path / "b", estimate={"runbook_overhead": "25s",
                                                       "dirty_rate": "200KB/s"})
    fixed.wave_dir.mkdir(parents=True)
    j = Journal(fixed.wave_dir / "journal.jsonl")
    _phase(j, "db1", "syncing", 0.0)
    _phase(j, "db1", "warm", 5.0)
    assert measured_overhead(fixed) is not None
    assert make_plan(fixed, start_at=0.0, preflight=False).plan.runbook_overhead == 25.0
