"""Opening archived evidence in the project's JupyterLab does not break it (issue 14 item 1).

A real archive (the sync runbook run headless against the lab) is opened in JupyterLab,
served as root with the environment's configuration (what ``jupyter/install.sh``
installed).  The reviewer edits a cell, presses Ctrl+S, trusts the notebook, and waits
past the autosave interval (set to 2 s: JupyterLab's setting
``@jupyterlab/docmanager-extension:plugin`` ``autosaveInterval``, default 120 s, so the
test waits seconds, not minutes).  Then every archived byte is unchanged, no
``.ipynb_checkpoints/`` appeared and ``vmigrate evidence verify`` passes; a direct save
through the REST API is refused with 403 (root ignores the 0400 file modes).

Before: the tab showed a dirty dot at once, autosave rewrote ``cutover.ipynb`` (274 kB ->
197 kB) and created ``.ipynb_checkpoints/``, and verify failed ("changed: cutover.ipynb;
not in manifest: .ipynb_checkpoints/...").  What JupyterLab does with a read-only model
(no autosave, no checkpoint: ``canSave`` false) is JupyterLab 4's docregistry/docmanager
code; nothing here depends on a VMware host.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser.jlab import (
    ARTIFACTS,
    BASE_SETTINGS,
    CHROMIUM,
    answer_kernel_dialog,
    http_get,
    jupyterlab,
    launch,
)
from tests.runbooks.conftest import MiB
from vmigrate_lib.audit.evidence import check_chain, verify_or_raise
from vmigrate_lib.faces.papermill_runner import run_runbook
from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

AUTOSAVE_S = 2


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def archive(tmp_path: Path) -> Any:
    """A project folder with a lab and one sealed sync archive in its workspace."""
    project = tmp_path / "project"
    lab_up(project / ".vmigrate-lab", disk_sizes=(8 * MiB, 4 * MiB), fill=0.25,
           workload=WorkloadSpec(rate_mb_s=2.0, ack_interval=0.2))
    try:
        params = {"vm": "alice", "hosts": "lab", "workspace": "workspaces/alice",
                  "source": {"type": "lab", "host": "esx-a"},
                  "destination": {"type": "lab", "host": "esx-b"},
                  "downtime_budget": "2m", "change_id": "CHG-EVID-1", "operator": "pytest",
                  "sync": {"max_cycles": 1}}
        res = run_runbook("sync", params, cwd=project)
        assert res.status == "ok", res.error
    finally:
        lab_down(project / ".vmigrate-lab", timeout=5)
    return project, res.folder


def test_opened_evidence_stays_valid(tmp_path: Path, archive: Any) -> None:
    from playwright.sync_api import sync_playwright

    project, folder = archive
    verify_or_raise(folder)
    before = _snapshot(folder)
    rel = folder.relative_to(project).as_posix()
    settings = {**BASE_SETTINGS,
                "@jupyterlab/docmanager-extension/plugin": {"autosaveInterval": AUTOSAVE_S}}
    ARTIFACTS.mkdir(exist_ok=True)
    with jupyterlab(tmp_path, project, settings) as base:
        model = json.loads(http_get(f"{base}/api/contents/{rel}/sync.ipynb?content=0"))
        assert model["writable"] is False
        assert _put(f"{base}/api/contents/{rel}/sync.ipynb") == 403
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                _review(page, f"{base}/lab/tree/{rel}/sync.ipynb")
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "browser-evidence-failure.png"),
                                full_page=True)
                raise
            finally:
                browser.close()
    assert not list(project.rglob(".ipynb_checkpoints"))
    assert _snapshot(folder) == before  # not one byte, not one mtime
    verify_or_raise(folder)
    assert check_chain(folder).status == "chained"


def _put(url: str) -> int:
    body = json.dumps({"type": "notebook", "format": "json",
                       "content": {"cells": [], "metadata": {}, "nbformat": 4,
                                   "nbformat_minor": 5}}).encode()
    req = urllib.request.Request(url, data=body, method="PUT",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _review(page: Any, url: str) -> None:
    """Open the archived notebook, edit a cell, Ctrl+S, Trust, and wait past autosave."""
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    answer_kernel_dialog(page, "No Kernel")
    page.wait_for_selector("[data-jp-item-name='read-only-indicator']", timeout=30_000)
    cell = page.locator(".jp-Notebook .jp-CodeCell .cm-content").first
    cell.click()
    page.keyboard.press("End")
    page.keyboard.type("  # a reviewer's note")
    page.keyboard.press("Control+s")
    page.wait_for_selector("text=is read-only", timeout=15_000)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.keyboard.type("Trust Notebook")
    page.keyboard.press("Enter")
    trust = page.locator(".jp-Dialog button", has_text="Trust")
    trust.first.wait_for(timeout=15_000)
    trust.first.click()
    page.wait_for_timeout(AUTOSAVE_S * 1000 * 4)  # several autosave intervals
    page.screenshot(path=str(ARTIFACTS / "browser-evidence-opened.png"), full_page=True)
