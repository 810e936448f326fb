"""The wave file (issue 15 item 1): read strictly, every problem one line, exit 2,
nothing written; each VM's parameters checked by the one params schema; the wave's
state file refuses a torn or edited copy.

What it proves: the checks run on real files through the real CLI.  Nothing here needs a
host: a real ESXi/vCenter would only add what preflight finds (``wave plan``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.wave.labwave import wave_file
from vmigrate_lib.errors import WaveFileError, WaveStateCorrupt
from vmigrate_lib.wave.fields import parse_rate
from vmigrate_lib.wave.spec import load_wave
from vmigrate_lib.wave.state import VmRun, WaveState, load, save

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "vmigrate_lib.faces.cli"]
SECRET = "Hunter2-S3cret"


def _vms() -> list[dict[str, Any]]:
    return [{"name": "db1", "source": "esx-a", "destination": "esx-b", "group": "db"},
            {"name": "app1", "source": "esx-c", "destination": "esx-d", "group": "app"}]


def _file(tmp_path: Path, **top: Any) -> Path:
    top.setdefault("groups", [{"name": "db"}, {"name": "app", "after": ["db"]}])
    return wave_file(tmp_path / "wave.yaml", tmp_path / "lab", tmp_path / "ws", _vms(), **top)


def test_example_wave_loads() -> None:
    spec = load_wave(ROOT / "examples" / "wave.yaml", base_dir=ROOT)
    assert [t.name for t in spec.tasks][:2] == ["db1", "db2"]
    assert spec.plan(0.0).depends_on(spec.tasks[2]) == spec.tasks[:2]
    assert spec.limits.per_source == 2 and spec.limits.bandwidth_of(spec.tasks[1].pair) == 1e8
    assert spec.vm_params["app5"]["dest_name"] == "app5-new"
    assert spec.vm_params["app6"]["cutover"]["probes"] == [22]
    assert spec.vm_params["app6"]["cutover"]["expected_boot"] == "2s"  # the template's, kept


def test_rates() -> None:
    assert parse_rate("1Gbit/s") == 125e6
    assert parse_rate("100MB/s") == 1e8
    assert parse_rate("10Gbit") == 1.25e9


def test_every_problem_is_one_line_exit_2_nothing_written(tmp_path: Path) -> None:
    path = _file(tmp_path, limits={"in_flight": 0, "per_host": 2},
                 groups=[{"name": "db", "after": ["app"]}, {"name": "app", "after": ["db"]},
                         {"name": "late", "window": {"start": "+2h", "end": "+1h"}}])
    raw = yaml.safe_load(path.read_text())
    raw["vms"][1]["group"] = "nope"
    raw["vms"].append({"name": "db1", "source": "esx-a", "destination": "esx-b"})
    raw["template"]["vm"] = "x"
    path.write_text(yaml.safe_dump(raw))
    out = subprocess.run([*CLI, "wave", "plan", str(path)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert all(ln.startswith("vmigrate: error: ") for ln in lines)
    text = out.stderr
    for words in ("limits.in_flight: must be a whole number", "limits.per_host: unknown key",
                  "form a cycle", "the window ends before it starts", "group must be one of",
                  "listed twice", "template.vm: is per VM"):
        assert words in text, (words, text)
    assert len(lines) == 8  # seven problems, then the summary line
    assert not (tmp_path / "ws").exists()


def test_a_secret_in_the_template_is_refused_and_not_echoed(tmp_path: Path) -> None:
    path = _file(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["template"]["source"]["url"] = f"ssh://root:{SECRET}@esx-a"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(WaveFileError) as exc:
        load_wave(path)
    problems = exc.value.fields["problems"]
    assert len(problems) == 2 and all("vms[" in p for p in problems)  # per VM, by the schema
    assert SECRET not in json.dumps(problems) and SECRET not in exc.value.one_line()


def test_each_vm_gets_its_own_workspace_and_absolute_lab(tmp_path: Path) -> None:
    spec = load_wave(_file(tmp_path))
    assert spec.vm_params["db1"]["workspace"] == str((tmp_path / "ws" / "db1").resolve())
    assert spec.vm_params["app1"]["source"]["host"] == "esx-c"
    assert spec.wave_dir == (tmp_path / "ws" / "wave-t").resolve()


def test_state_round_trip_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    st = WaveState("t", 100.0, "d", {"a": VmRun(status="warm", warm_cycles=2)})
    save(path, st)
    back = load(path)
    assert back is not None and back.vms["a"].status == "warm" and back.vms["a"].warm_cycles == 2
    edited = json.loads(path.read_text())
    edited["vms"]["a"]["status"] = "done"  # an edit behind vmigrate's back
    path.write_text(json.dumps(edited))
    with pytest.raises(WaveStateCorrupt, match="changed outside vmigrate"):
        load(path)
    path.write_text('{"version": 9}')
    with pytest.raises(WaveStateCorrupt, match="newer"):
        load(path)
    path.write_text('{"vers')
    with pytest.raises(WaveStateCorrupt, match="not readable JSON"):
        load(path)
