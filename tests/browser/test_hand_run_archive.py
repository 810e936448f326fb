"""A hand run is evidence too (issue 14 item 2): Run All in JupyterLab ends in a sealed archive.

The sync runbook is opened in the project's JupyterLab (the environment's Jupyter
configuration as ``jupyter/install.sh`` wrote it: ``LabApp.expose_app_in_browser``, the
widget-state setting, the sealed-evidence contents manager) and run by hand in Debian's
Chromium against the lab.  Its last cell has the page save the notebook (JupyterLab's
document context, reached through ``window.jupyterapp``; JupyterLab documents the
option as ``LabApp.expose_app_in_browser``) and archives it as ``vmigrate run`` does.
The test proves the archive holds the executed notebook with the run's outputs and the
widget state, the HTML, the parameters, the journal slice with this run's cycles, the
CSV/PNG, versions, commit and a manifest that ``vmigrate evidence verify`` accepts, and
that the workspace journal records it (the chain verify checks).  Before: the last cell
only printed the result, and no evidence folder existed.

What only a real ESXi/vCenter host would show: nothing here depends on the host kind;
the hosts are the local lab's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.jlab import ARTIFACTS, CHROMIUM, REPO, answer_kernel_dialog, jupyterlab, launch
from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]
VMIGRATE = REPO / ".venv" / "bin" / "vmigrate"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab serving a project: the committed runbooks/sync.ipynb (at most 2 cycles,
    no pause) and a running lab."""
    work = tmp_path / "work"
    (work / "runbooks").mkdir(parents=True)
    nb = json.loads((REPO / "runbooks" / "sync.ipynb").read_text())
    for cell in nb["cells"]:
        if "parameters" in cell["metadata"].get("tags", []):
            src = "".join(cell["source"])
            old = 'sync = {"max_cycles": 10, "target_interval": "5s"}'
            assert old in src
            cell["source"] = src.replace(old, 'sync = {"max_cycles": 2, "target_interval": "1s"}')
    (work / "runbooks" / "sync.ipynb").write_text(json.dumps(nb))
    lab_up(work / ".vmigrate-lab", disk_sizes=(16 << 20,), fill=0.25,
           workload=WorkloadSpec(rate_mb_s=1.0, ack_interval=0.2))
    try:
        with jupyterlab(tmp_path, work) as base:
            yield base, work
    finally:
        lab_down(work / ".vmigrate-lab", timeout=5)


def _run_all(page: Any, base: str) -> str:
    """Open the runbook, Run All Cells, wait for the last cell's 'evidence sealed in'."""
    page.goto(f"{base}/lab/tree/runbooks/sync.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    answer_kernel_dialog(page, "Select")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function(
        "() => document.body.innerText.includes('evidence sealed in') || document"
        ".querySelector('[data-mime-type=\"application/vnd.jupyter.error\"]')",
        timeout=150_000)
    page.screenshot(path=str(ARTIFACTS / "browser-hand-run.png"), full_page=True)
    text: str = page.evaluate("() => document.body.innerText")
    return text


def test_hand_run_ends_in_a_verified_archive(project: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    base, work = project
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            text = _run_all(browser.new_page(viewport={"width": 1400, "height": 1000}), base)
        finally:
            browser.close()
    assert "evidence sealed in" in text, text[-2000:]
    folders = sorted((work / "workspaces" / "alice" / "evidence").glob("*-sync-*"))
    assert len(folders) == 1
    folder = folders[0]
    proc = subprocess.run([str(VMIGRATE), "evidence", "verify", str(folder)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()}
    for name in ("sync.ipynb", "sync.html", "parameters.yaml", "journal.jsonl", "run.json",
                 "environment.json", "git.json", "MANIFEST.sha256", "audit/cycles.csv",
                 "audit/downtime.png"):
        assert name in names, sorted(names)
    nb = json.loads((folder / "sync.ipynb").read_text())
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "RESULT {" in outputs  # the run's outputs, saved from the page
    assert "application/vnd.jupyter.widget-state+json" in nb["metadata"].get("widgets", {})
    cycles = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    assert any(r["type"] == "cycle" for r in cycles)
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok" and run["mode"] == "by hand in JupyterLab"
    assert run["result"]["runbook"] == "sync"
    journal = (work / "workspaces" / "alice" / "journal.jsonl").read_text()
    assert f'"folder": "{folder}"' in journal  # the chain verify checks
