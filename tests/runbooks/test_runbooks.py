"""papermill executes the real runbooks against the lab; assertions use what was recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from vmigrate_lib.audit.evidence import MANIFEST, verify, verify_or_raise
from vmigrate_lib.audit.runner import run_runbook
from vmigrate_lib.audit.tables import read_journal

SECRET_VALUE = "s3cr3t-Value-0f-the-t3st"  #: the value conftest's params reference


def _assert_no_secret(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            assert SECRET_VALUE.encode() not in p.read_bytes(), p


def _archive_basics(folder: Path, kind: str) -> dict[str, Any]:
    for name in (f"{kind}.ipynb", f"{kind}.html", "parameters.yaml", "journal.jsonl",
                 "environment.json", "git.json", "run.json", MANIFEST,
                 "audit/cycles.csv", "audit/steps.csv", "audit/delta_bytes.png",
                 "audit/phase_durations.png", "audit/throughput.png", "audit/downtime.png"):
        assert (folder / name).is_file(), name
    assert verify_or_raise(folder).checked >= 13
    env = json.loads((folder / "environment.json").read_text())
    assert env["packages"]["papermill"] and env["python"]
    git = json.loads((folder / "git.json").read_text())
    assert len(git["runbook_sha256"]) == 64 and git["runbook_commit"]
    assert "<img" in (folder / f"{kind}.html").read_text()  # PNG inlined, readable offline
    _assert_no_secret(folder)
    run: dict[str, Any] = json.loads((folder / "run.json").read_text())
    return run


def test_sync_then_cutover_against_the_lab(lab: Path, params: dict[str, Any]) -> None:
    sync = run_runbook("sync", params, cwd=lab)
    assert sync.status == "ok", sync.error
    run = _archive_basics(sync.folder, "sync")
    assert run["result"]["converged"] is True
    assert run["result"]["cycles_run"] >= 2  # the seed and at least one delta
    assert not (sync.folder / "FAILED").exists()

    # the journal slice holds exactly the cycles the result counts, and the CSV agrees
    sliced = read_journal(sync.folder / "journal.jsonl")
    cycles = [r for r in sliced if r["type"] == "cycle"]
    assert cycles[0]["kind"] == "seed"
    assert len(cycles) == run["result"]["cycles_run"]
    csv = pd.read_csv(sync.folder / "audit" / "cycles.csv")
    assert list(csv["bytes_changed"]) == [c["bytes_changed"] for c in cycles]
    assert csv["predicted_downtime_s"].notna().all()

    # the executed notebook keeps the widget state (papermill) and the plain table + PNG
    nb = nbformat.read(sync.folder / "sync.ipynb", as_version=4)
    assert nb.metadata.get("widgets"), "widget state not saved"
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("cycle 1 (seed) done" in o.get("text", "") for o in outputs)  # plain lines
    text = "".join(o.get("text", "") for o in outputs)
    assert text.count("] source VM:") == 1  # preflight ran once (its step; the loop reuses it)
    assert run["result"]["stopped_because"] == "converged"
    plans = [r for r in sliced if r["type"] == "plan"]  # the loop of sync --until-converged
    assert len(plans) == len(cycles) and plans[-1]["converged"] is True

    cutover = run_runbook("cutover", params, cwd=lab)  # the same parameters as the sync run
    assert cutover.status == "ok", cutover.error
    crun = _archive_basics(cutover.folder, "cutover")
    assert crun["result"]["status"] == "done"
    assert 0 < crun["result"]["downtime_s"] < 120
    steps = pd.read_csv(cutover.folder / "audit" / "steps.csv")
    done = steps[(steps["type"] == "step") & (steps["status"] == "done")]["step"].tolist()
    assert done[:3] == ["go_no_go", "shutdown", "final_sync"] and done[-1] == "probes"
    # the workspace journal records every archive with its manifest digest
    ws = read_journal(lab / "workspaces" / "alice" / "journal.jsonl")
    archived = [r for r in ws if r["type"] == "evidence_archived"]
    assert [a["status"] for a in archived] == ["ok", "ok"]


def test_failing_run_is_archived_and_marked_failed(lab: Path, params: dict[str, Any]) -> None:
    res = run_runbook("sync", {**params, "vm": "nobody"}, cwd=lab)
    assert res.status == "failed" and res.exit_code == 2
    assert res.error and res.error["error"] == "VmNotFound"
    run = json.loads((res.folder / "run.json").read_text())
    assert run["status"] == "failed"
    assert (res.folder / "FAILED").read_text().startswith("failed:")
    nb = nbformat.read(res.folder / "sync.ipynb", as_version=4)
    assert nb.metadata["papermill"]["exception"] is True
    assert verify(res.folder).ok
    _assert_no_secret(res.folder)


def test_timeout_is_archived_and_marked(lab: Path, params: dict[str, Any]) -> None:
    # after the seed the planner pauses (toward a 30 s target interval: 60 s), far
    # beyond the 4 s cell timeout
    slow = {**params, "sync": {"max_cycles": 50, "target_interval": "30s"}}
    res = run_runbook("sync", slow, cwd=lab, cell_timeout=4)
    assert res.status == "timeout" and res.exit_code == 1
    nb = nbformat.read(res.folder / "sync.ipynb", as_version=4)
    assert nb.metadata["papermill"]["exception"] is True
    assert nb.metadata["papermill"]["status"] == "timeout"
    assert "vmigrate-run-failed" in nb.cells[0].metadata["tags"]
    failed = [c for c in nb.cells if c.metadata.get("papermill", {}).get("status") == "failed"]
    assert len(failed) == 1 and "sync_until_converged" in failed[0].source
    assert (res.folder / "FAILED").read_text().startswith("timeout:")
    assert verify(res.folder).ok


@pytest.mark.parametrize("change, words", [
    ({"colour": "red"}, "unknown parameter colour"),
    ({"downtime_budget": "soon"}, "not a duration"),
    ({"hosts": "real"}, "source.type is 'lab' but hosts is 'real'"),
])
def test_parameter_errors_stop_the_run(lab: Path, params: dict[str, Any],
                                       change: dict[str, Any], words: str) -> None:
    res = run_runbook("sync", {**params, **change}, cwd=lab)
    assert res.status == "failed" and res.exit_code == 2
    assert res.error and res.error["error"] == "ParameterError"
    assert words in res.error["message"]
    nb = nbformat.read(res.folder / "sync.ipynb", as_version=4)
    stopped = [i for i, c in enumerate(nb.cells)
               if c.metadata.get("papermill", {}).get("exception")]
    assert "validate_parameters" in nb.cells[stopped[0]].source
    assert not (lab / "workspaces" / "alice" / "state.json").exists()  # nothing touched
