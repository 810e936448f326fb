"""A window that ends before a VM's cutover can start, and the bandwidth cap per VM.

What it proves (``vmigrate wave run`` on two writing lab VMs on one host pair, their
group's window ending 5 s after the wave starts, well before a seed under papermill can
finish): neither cutover starts; each VM is reported ``window_missed``, its source still
running, its workspace synced with no cutover recorded, so it can go in the next wave.
And, the wave file naming the pair's bandwidth, every step of each VM ran with a
``bwlimit`` on both hosts of its params file equal to the pair's share split among the
VMs in flight on that pair, as the wave's journal records (``vm_bandwidth_cap``).
A switchover window has an end as well as a start: VMware HCX's switchover schedule
carries a ``startTime`` and an ``expiryTime``
(https://developer.broadcom.com/xapis/hcx-workload-migration-apis/latest/data-structures/queryMigrationsResponse_data_items_inner_switchoverParams_schedule/);
that HCX then leaves the VM replicating is our reading, not checked on a real HCX.
What only real hosts would show: the cap on a real link (the lab's local folders have no
SSH data plane to throttle; the cap is ``bwlimit``, which the SSH relay's RateLimiter and
the agent's throttle apply, tested with the data plane's own tests).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.wave.labwave import build_lab, wave_file
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.engine.workspace import Journal, Workspace
from vmigrate_lib.lab.lifecycle import lab_down
from vmigrate_lib.wave.spec import load_wave
from vmigrate_lib.wave.state import load

VMS = [("w1", "esx-a", "esx-b"), ("w2", "esx-a", "esx-b")]
SHARE = 8_000_000  #: the pair's share, bytes/s
CLI = [sys.executable, "-m", "vmigrate_lib.faces.cli"]


@pytest.fixture
def lab_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "lab"
    build_lab(root, [(n, s) for n, s, _ in VMS])
    yield root
    lab_down(root)


@pytest.mark.timeout(1200)
def test_window_missed_nothing_powered_off_caps_applied(tmp_path: Path, lab_root: Path) -> None:
    ws = tmp_path / "ws"
    vms: list[dict[str, Any]] = [{"name": n, "source": s, "destination": d, "group": "g"}
                                 for n, s, d in VMS]
    path = wave_file(tmp_path / "wave.yaml", lab_root, ws, vms,
                     groups=[{"name": "g", "window": {"start": "+0s", "end": "+5s"}}],
                     limits={"in_flight": 2, "per_source_host": 2, "per_destination_host": 2,
                             "bandwidth": {"esx-a->esx-b": SHARE}},
                     run={"poll": "0.5s"})
    spec = load_wave(path)
    run = subprocess.run([*CLI, "wave", "run", str(path)], capture_output=True, text=True,
                         timeout=1100, check=False)
    print(run.stdout[-3000:], run.stderr[-3000:])
    state = load(spec.wave_dir / "state.json")
    assert state is not None
    assert {k: v.status for k, v in state.vms.items()} == dict.fromkeys(("w1", "w2"),
                                                                         "window_missed")
    assert run.returncode == 1 and "2 window_missed" in run.stdout
    journal = list(Journal(spec.wave_dir / "journal.jsonl").records())
    assert not [r for r in journal if r["type"] == "vm_phase" and r["status"] == "cutover"]
    for n, s, _d in VMS:
        assert LabHost(lab_root, s).power_state(n) == "poweredOn"  # nothing powered off
        wstate = Workspace(Path(spec.vm_params[n]["workspace"])).load()
        assert wstate is not None and wstate.cutover is None
        assert "window missed" in state.vms[n].error

    caps = [r for r in journal if r["type"] == "vm_bandwidth_cap"]
    assert {r["vm"] for r in caps} == {"w1", "w2"}
    for r in caps:  # the pair's share split among the VMs in flight on it
        assert r["copies"] in (1, 2) and r["bwlimit"] == SHARE // r["copies"], r
    params = yaml.safe_load((spec.wave_dir / "params" / "w1.yaml").read_text())
    last = [r for r in caps if r["vm"] == "w1"][-1]
    assert params["source"]["bwlimit"] == params["destination"]["bwlimit"] == last["bwlimit"]
    report = sorted((spec.wave_dir / "report").iterdir())[-1] / "wave-report.ipynb"
    assert "window_missed" in report.read_text()
