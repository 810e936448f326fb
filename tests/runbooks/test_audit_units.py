"""Fast checks of the audit pieces: manifest tampering, redaction, parameters, dashboard."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.audit.dashboard import Dashboard
from vmigrate_lib.audit.evidence import EvidenceTampered, verify, verify_or_raise, write_manifest
from vmigrate_lib.audit.provenance import REDACTED, redact, secret_refs
from vmigrate_lib.engine.progress import CycleEnded, CycleStarted, PredictionMade, StepChanged
from vmigrate_lib.errors import ParameterError
from vmigrate_lib.faces.cli import main
from vmigrate_lib.faces.runbook_params import check_parameters, given_parameters

BASE: dict[str, Any] = {
    "vm": "alice", "hosts": "lab", "workspace": "ws", "change_id": "CHG-1", "operator": "me",
    "source": {"type": "lab", "host": "esx-a"}, "destination": {"type": "lab", "host": "esx-b"},
}


def _archive(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    (folder / "audit").mkdir(parents=True)
    (folder / "run.json").write_text('{"status": "ok"}')
    (folder / "audit" / "cycles.csv").write_text("cycle,bytes\n1,10\n")
    write_manifest(folder)
    return folder


@pytest.mark.parametrize("tamper, problem", [
    (lambda f: (f / "run.json").write_text('{"status": "OK"}'), "changed: run.json"),
    (lambda f: (f / "audit" / "cycles.csv").unlink(), "missing: audit/cycles.csv"),
    (lambda f: (f / "extra.txt").write_text("x"), "not in manifest: extra.txt"),
    (lambda f: (f / "MANIFEST.sha256").write_text("garbage\n"), "bad manifest line"),
])
def test_tampered_evidence_is_detected(tmp_path: Path, tamper: Any, problem: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = _archive(tmp_path)
    assert verify(folder).ok
    assert main(["evidence", "verify", str(folder)]) == 0
    tamper(folder)
    assert any(problem in p for p in verify(folder).problems())
    with pytest.raises(EvidenceTampered):
        verify_or_raise(folder)
    assert main(["evidence", "verify", str(folder)]) == 1
    assert "does not match its manifest" in capsys.readouterr().err


def test_missing_manifest_fails(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    with pytest.raises(EvidenceTampered, match="no MANIFEST"):
        verify(tmp_path)


def test_secret_values_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET", 'pa"ss-w0rd')
    params = {"source": {"password_env": "MY_SECRET"}, "destination": {"password_env": "UNSET"}}
    secrets = secret_refs(params)
    assert secrets == {"MY_SECRET": 'pa"ss-w0rd'}
    (tmp_path / "out.txt").write_text('leaked pa"ss-w0rd here')
    (tmp_path / "nb.json").write_text('{"text": "pa\\"ss-w0rd"}')  # JSON-escaped form
    (tmp_path / "clean.txt").write_text("nothing")
    counts = redact(tmp_path, secrets)
    assert counts == {"out.txt": 1, "nb.json": 1}
    assert (tmp_path / "out.txt").read_text() == f"leaked {REDACTED} here"
    assert "w0rd" not in (tmp_path / "nb.json").read_text()


@pytest.mark.parametrize("change, words", [
    ({"colour": "red"}, "unknown parameter colour"),
    ({"max_cycles": 3}, "unknown parameter max_cycles for the sync runbook"),
    ({"force": True}, "unknown parameter force for the sync runbook"),
    ({"sync": {"max_cycles": 0}}, "sync.max_cycles: must be from 1 to 1000"),
    ({"sync": {"max_cycles": "3"}}, "sync.max_cycles: must be an integer"),
    ({"sync": {"target_interval": "soon"}}, "not a duration"),
    ({"change_id": ""}, "missing parameter change_id"),
    ({"change_id": None}, "missing parameter change_id"),
    ({"change_id": "x"}, "not a change reference"),
    ({"operator": " "}, "operator is empty"),
    ({"hosts": "prod"}, "hosts must be lab or real"),
    ({"hosts": "real"}, "source.type is 'lab' but hosts is 'real'"),
    ({"downtime_budget": -1}, "must not be negative"),
    ({"source": {"type": "lab", "host": "esx-a", "password": "x"}}, "holds a secret value"),
    ({"cutover": {"shutdown_timeout": "soon"}}, "cutover.shutdown_timeout: not a duration"),
])
def test_runbook_parameter_errors(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        check_parameters("sync", {**BASE, **change})


def test_cutover_parameters() -> None:
    from vmigrate_lib.faces.notebook import cutover_options

    run = check_parameters("cutover", {**BASE, "cutover": {"probes": [22], "certify": "full"},
                                       "sync": {"max_cycles": 3}, "force": None})
    assert run.migration.cutover.probes == (22,) and run.force is False
    opts = cutover_options(run)
    assert (opts.probes, opts.certify, opts.force, opts.shutdown_timeout) == ((22,), "full",
                                                                              False, 300.0)
    assert cutover_options(check_parameters("cutover", {**BASE, "force": True})).force is True
    with pytest.raises(ParameterError, match="unknown parameter probes for the cutover"):
        check_parameters("cutover", {**BASE, "probes": [22]})  # the old flat names are gone
    with pytest.raises(ParameterError, match="probes: must be a list of TCP ports"):
        check_parameters("cutover", {**BASE, "cutover": {"probes": [70000]}})
    with pytest.raises(ParameterError, match="force must be True or False") as refused:
        check_parameters("cutover", {**BASE, "force": "hunter2-pasted"})
    assert "hunter2" not in refused.value.one_line()  # a rejected value is never repeated
    with pytest.raises(ParameterError, match=r"cutover\.force does not belong in a params file"):
        check_parameters("cutover", {**BASE, "cutover": {"force": True}})


def test_runbook_parameters_are_the_schema() -> None:
    """Both runbooks take exactly the params file's keys (plus continue_change, and force
    for the cutover),
    their parameters cells declare exactly those, and None means "not given"."""
    import nbformat

    from vmigrate_lib.faces.papermill_runner import injected
    from vmigrate_lib.faces.runbook_params import RUNBOOK_PARAMETERS
    from vmigrate_lib.params import MigrationParams

    schema = {f for f in MigrationParams.__dataclass_fields__}
    assert {"sync": schema | {"continue_change"},
            "cutover": schema | {"force", "continue_change"}} == RUNBOOK_PARAMETERS
    repo = Path(__file__).resolve().parents[2]
    for kind, names in RUNBOOK_PARAMETERS.items():
        nb = nbformat.read(repo / "runbooks" / f"{kind}.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        ns: dict[str, Any] = {}
        exec(cell.source, ns)
        ns.pop("__builtins__")
        assert set(ns) == names, kind
        check_parameters(kind, ns)  # the cell's own values are valid (a hand run works)
        # a run from a file is the file: what it leaves out is None, never the cell's example
        assert injected(kind, {"vm": "x"}) == {**{k: None for k in names}, "vm": "x"}
    run = check_parameters("sync", {**BASE, "sync": None, "cutover": None, "dest_name": None,
                                    "hosts": None, "downtime_budget": None})
    assert (run.migration.sync.max_cycles, run.migration.downtime_budget, run.hosts) == (
        10, 120.0, "lab")


def test_given_parameters_ignores_what_came_before() -> None:
    ns: dict[str, Any] = {"rb": io, "_before": 1, "x": 1}
    before = frozenset(ns)
    ns.update(vm="alice", _private=2, io=io)
    assert given_parameters(ns, before) == {"vm": "alice"}


def test_dashboard_prints_one_line_per_cycle_and_updates() -> None:
    out = io.StringIO()
    dash = Dashboard("t", budget=60.0, stream=out, headless=True, min_interval=0)
    first_png = dash.plot.value
    dash.event(CycleStarted(number=1, kind="seed"))
    dash.progress(50, 100, 1e6)
    assert dash.bar.value == 0.5 and "at 1.0 MB/s" in dash.bytes_label.value
    rec = {"number": 1, "kind": "seed", "duration": 1.0, "bytes_changed": 1 << 20,
           "bytes_sent": 1 << 20, "throughput": 1e6, "phases": {"copy": 1.0}, "status": "ok",
           "started": 1.0, "certify": {"result": "identical"}}
    dash.event(CycleEnded(rec))
    dash.event(PredictionMade({"cycle": 1, "predicted_downtime": 42.0, "budget": 60.0,
                               "converged": True}))
    dash.event(StepChanged(name="shutdown", status="done"))
    assert dash.cycles_drawn == 1 and dash.plot.value != first_png
    assert "seed" in dash.table.value and "42.0 s" in dash.table.value
    assert "shutdown" in dash.steps.value
    lines = out.getvalue().splitlines()
    assert sum("cycle 1 (seed) done" in line for line in lines) == 1
    assert any("50.0%" in line for line in lines)  # headless: progress lines too
