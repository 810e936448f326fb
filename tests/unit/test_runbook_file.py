"""A hand run leaves its runbook file as it was (issue 14 review, item 3), without a browser.

The save that archives a hand run writes the run's outputs and widget state into the
runbook file; afterwards the file gets back the bytes it had when the run began when no
cell was changed, else the saved cells (the operator's parameter edits kept) with every
output cleared, written as jupyter_server writes a notebook (nbformat's JSON, indent 1,
sorted keys); it keeps the save's modification time, because JupyterLab's next save
compares it (``Context._maybeSave`` in @jupyterlab/docregistry: a file newer than its
last save by 500 ms is a conflict dialog).  Before: the committed runbook kept the
outputs (git diff dirty, ``vmigrate run`` warned it differs).  The failure archive's
edges (headless, outside JupyterLab, archiving already under way) archive nothing.  The
save through JupyterLab itself is tests/browser/test_hand_run_archive.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.faces import hand_run, runbook_file

REPO = Path(__file__).resolve().parents[2]


def _executed(nb: dict[str, Any], params: str | None = None) -> dict[str, Any]:
    """``nb`` as JupyterLab saves it after Run All: outputs, counts, widget state."""
    out: dict[str, Any] = json.loads(json.dumps(nb))
    for n, cell in enumerate(out["cells"]):
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["x\n"]}]
            cell["execution_count"] = n
            if params is not None and "parameters" in cell["metadata"].get("tags", []):
                cell["source"] = params
    out["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    return out


def test_unchanged_cells_get_the_bytes_back(tmp_path: Path) -> None:
    before = (REPO / "runbooks" / "sync.ipynb").read_bytes()
    path = tmp_path / "sync.ipynb"
    path.write_bytes(before)
    runbook_file.remember(path)
    saved = json.dumps(_executed(json.loads(before)), indent=1).encode()
    path.write_bytes(saved)  # the save for the archive
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    mtime = path.stat().st_mtime_ns
    runbook_file.restore(path, saved, mtime)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime


def test_edited_parameters_stay_and_outputs_go() -> None:
    before = (REPO / "runbooks" / "sync.ipynb").read_bytes()
    saved = json.dumps(_executed(json.loads(before), params='vm = "web01"\n')).encode()
    data = runbook_file.restored(saved, before)
    nb = json.loads(data)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(c["source"] == 'vm = "web01"\n' for c in code)
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "widgets" not in nb["metadata"]
    assert data.endswith(b"}\n") and data.startswith(b'{\n "cells": [\n')  # nbformat's JSON


def test_a_runbook_dirty_before_the_run_is_cleared_not_kept() -> None:
    clean = json.loads((REPO / "runbooks" / "sync.ipynb").read_bytes())
    dirty = json.dumps(_executed(clean)).encode()
    data = runbook_file.restored(dirty, dirty)
    assert b'"outputs": []' in data and b'"text": ["x' not in data


def test_failure_archive_edges_archive_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run: Any = object()  # never read: nothing is archived
    err = ValueError("boom")
    monkeypatch.setenv(hand_run.SESSION_ENV, "/x/sync.ipynb")
    monkeypatch.setenv("VMIGRATE_HEADLESS", "1")  # the runner archives a failure itself
    assert hand_run.archive_failed(run, {}, err) is None
    monkeypatch.delenv("VMIGRATE_HEADLESS")
    hand_run.ARCHIVING.add("archiving")  # the archive itself failed: not archived again
    try:
        assert hand_run.archive_failed(run, {}, err) is None
    finally:
        hand_run.ARCHIVING.clear()
    monkeypatch.delenv(hand_run.SESSION_ENV)  # outside JupyterLab
    assert hand_run.archive_failed(run, {}, err) is None
    assert capsys.readouterr().out == ""
