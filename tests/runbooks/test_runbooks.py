"""papermill executes the real runbooks against the lab; assertions use what was recorded."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import papermill as pm
import pytest
import yaml

from vmigrate_lib.audit.evidence import MANIFEST, check_chain, verify, verify_or_raise
from vmigrate_lib.audit.tables import read_journal
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.errors import MigrationFinished, ParameterError
from vmigrate_lib.faces.papermill_runner import pick_kernel, run_runbook, runbooks_dir

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
    # when it ran, for a person too (jupyter-ux 14: epoch floats only)
    for key in ("started", "ended"):
        assert run[f"{key}_utc"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run[key]))
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
    assert crun["result"]["downtime_s"] > 0  # no upper bound: a loaded runner is slow
    steps = pd.read_csv(cutover.folder / "audit" / "steps.csv")
    done = steps[(steps["type"] == "step") & (steps["status"] == "done")]["step"].tolist()
    assert done[:4] == ["go_no_go", "predelta", "shutdown", "final_sync"] and done[-1] == "probes"
    # the workspace journal records every archive with its manifest digest
    ws = read_journal(Workspace(lab / "workspaces" / "alice").journal.path)
    archived = [r for r in ws if r["type"] == "evidence_archived"]
    assert [a["status"] for a in archived] == ["ok", "ok"]
    assert check_chain(cutover.folder).status == "chained"  # verify compares that digest
    assert any(n.startswith("unsigned: no signing key") for n in cutover.notes)
    # the result is a scrapbook scrap too (issue 14 item 8), read with scrapbook itself
    import scrapbook as sb  # type: ignore[import-untyped]

    scraps = sb.read_notebook(str(cutover.folder / "cutover.ipynb")).scraps
    assert scraps["result"].data["status"] == "done"
    assert scraps["result"].data == crun["result"]

    # issue 14 item 4: once cut over, another sync or cutover is refused (exit 2), saying
    # what happened and when, and nothing is archived.  Before: sync ran a delta cycle and
    # cutover replayed the old result as a new "OK" archive.
    before = sorted(cutover.folder.parent.iterdir())
    for kind in ("sync", "cutover"):
        with pytest.raises(MigrationFinished) as refused:
            run_runbook(kind, params, cwd=lab)
        line = refused.value.one_line()
        assert "already cut over to alice on esx-b at 20" in line and "new workspace" in line
        assert refused.value.exit_code == 2
    assert sorted(cutover.folder.parent.iterdir()) == before


def _history_rows(ipython_dir: Path) -> list[str]:
    """Every cell IPython recorded in its history databases under ``ipython_dir``."""
    rows: list[str] = []
    for db in ipython_dir.rglob("*.sqlite"):
        with sqlite3.connect(db) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master")}
            if "history" in tables:
                rows += [r[0] for r in con.execute("select source from history")]
    return rows


@pytest.mark.parametrize("kernel", ["vmigrate", "python3"])
def test_failing_run_is_archived_and_marked_failed(lab: Path, params: dict[str, Any],
                                                   tmp_path: Path, kernel: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that fails in the kernel (no such VM) is archived, sealed and private, and the
    kernel kept no IPython history (its cells hold the parameters), whether its spec turns
    history off (vmigrate) or not (python3).  Before: the archive was 0644 files in 0755
    folders (the params file copied 0644 from a 0600 original) and
    ``$IPYTHONDIR/profile_default/history.sqlite`` held every executed cell."""
    ipython_dir = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    params_file = lab / "params.yaml"
    params_file.write_text(yaml.safe_dump({**params, "vm": "nobody"}))
    params_file.chmod(0o600)
    res = run_runbook("sync", {**params, "vm": "nobody"}, cwd=lab, params_file=params_file,
                      kernel_name=kernel)
    assert res.status == "failed" and res.exit_code == 2
    assert res.error and res.error["error"] == "VmNotFound"
    run = json.loads((res.folder / "run.json").read_text())
    assert run["status"] == "failed"
    assert (res.folder / "FAILED").read_text().startswith("failed:")
    nb = nbformat.read(res.folder / "sync.ipynb", as_version=4)
    assert nb.metadata["papermill"]["exception"] is True
    assert verify(res.folder).ok
    _assert_no_secret(res.folder)
    # private: the evidence root 0700; the sealed run folder read-only, 0500 folders and
    # 0400 files (issue 14 item 1: before, 0700/0600 and writable by its owner)
    assert stat.S_IMODE(res.folder.parent.stat().st_mode) == 0o700
    for p in [*res.folder.rglob("*"), res.folder]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert mode & 0o077 == 0, (p, oct(mode))
        assert mode == (0o500 if p.is_dir() else 0o400), (p, oct(mode))
    assert (res.folder / "params-file.yaml").read_bytes() == params_file.read_bytes()
    # no history database with cells in it (the kernel ran with history off)
    assert _history_rows(ipython_dir) == []


def test_timeout_is_archived_and_marked(lab: Path, params: dict[str, Any]) -> None:
    # after the seed the planner pauses (toward a 30 s target interval: 60 s), far
    # beyond the 20 s cell timeout (20 s, not less: on a loaded runner the first cell's
    # imports of pandas and matplotlib alone took 4.5 s)
    slow = {**params, "sync": {"max_cycles": 50, "target_interval": "30s"}}
    res = run_runbook("sync", slow, cwd=lab, cell_timeout=20)
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
    ({"source": {"type": "lab", "host": "esx-a", "password": "s3cr3t-Value-0f-the-t3st"}},
     "source.password holds a secret"),
    ({"change_id": None}, "missing parameter change_id"),
])
def test_parameter_errors_stop_the_run(lab: Path, params: dict[str, Any],
                                       change: dict[str, Any], words: str,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused parameters raise before anything is archived or a kernel starts: no
    workspace, no evidence folder, no IPython profile.  Before: a failed run was archived
    with the refused values (a pasted password in parameters.yaml, the notebook, the HTML)."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    with pytest.raises(ParameterError) as exc:
        run_runbook("sync", {**params, **change}, cwd=lab)
    assert words in exc.value.one_line()
    assert SECRET_VALUE not in exc.value.one_line()
    assert not (lab / "workspaces").exists()
    assert not (tmp_path / "ipython").exists()


def test_the_notebook_checks_its_own_parameters(lab: Path, params: dict[str, Any]) -> None:
    """By hand (papermill or JupyterLab, no runner in front), the validation cell stops
    the notebook before any step."""
    out = lab / "hand.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as exc:
        pm.execute_notebook(str(runbooks_dir() / "sync.ipynb"), str(out),
                            parameters={**params, "colour": "red"}, kernel_name=pick_kernel(),
                            cwd=str(lab), progress_bar=False)
    assert exc.value.ename == "ParameterError" and "unknown parameter colour" in exc.value.evalue
    nb = nbformat.read(out, as_version=4)
    stopped = [i for i, c in enumerate(nb.cells)
               if c.metadata.get("papermill", {}).get("exception")]
    assert "validate_parameters" in nb.cells[stopped[0]].source
    assert not (lab / "workspaces" / "alice" / "state.json").exists()  # nothing touched
