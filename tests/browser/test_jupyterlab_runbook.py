"""By hand in JupyterLab: the sync runbook runs against the lab, the dashboard renders live.

JupyterLab is started on 127.0.0.1 with a temporary HOME and Jupyter dirs, no
token (:mod:`tests.browser.jlab`); Debian's chromium is driven through Python
Playwright (no browser download).  The runbook sits in ``<project>/runbooks/`` with
the lab in ``<project>/.vmigrate-lab``, as in a checkout: the kernel runs in
``runbooks/`` and the relative ``lab_root`` and ``workspace`` must still mean the
project's (issue 14 item 3; before: HostNotFound "no lab host 'esx-a' under
<project>/runbooks/.vmigrate-lab").  The screenshot lands in ``artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.jlab import (
    ARTIFACTS,
    CHROMIUM,
    REPO,
    http_get,
    jupyterlab,
    launch,
    start_kernel,
)
from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture
def jupyterlab_project(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A token-less JupyterLab serving a project: runbooks/sync.ipynb and a running lab."""
    work = tmp_path / "work"
    (work / "runbooks").mkdir(parents=True)
    nb = json.loads((REPO / "runbooks" / "sync.ipynb").read_text())
    from jupyter_client.kernelspec import KernelSpecManager

    if "vmigrate" not in KernelSpecManager().find_kernel_specs():
        nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}
    for cell in nb["cells"]:  # what a newcomer edits: at most 4 cycles, short pauses
        if "parameters" in cell["metadata"].get("tags", []):
            src = "".join(cell["source"])
            old = 'sync = {"max_cycles": 10, "target_interval": "5s"}'
            assert old in src
            cell["source"] = src.replace(old, 'sync = {"max_cycles": 4, "target_interval": "1s"}')
    (work / "runbooks" / "sync.ipynb").write_text(json.dumps(nb))
    lab_up(work / ".vmigrate-lab", disk_sizes=(32 << 20, 16 << 20), fill=0.25,
           workload=WorkloadSpec(rate_mb_s=2.0, ack_interval=0.2))
    try:
        with jupyterlab(tmp_path, work) as base:
            yield base, work
    finally:
        lab_down(work / ".vmigrate-lab", timeout=5)


def test_sync_runbook_dashboard_renders_and_updates(
        jupyterlab_project: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    base, work = jupyterlab_project
    settings = json.loads(http_get(
        f"{base}/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin"))
    assert settings["schema"]["properties"]["saveState"]["default"] is True, \
        "widget state saving is off: run jupyter/install.sh (ships overrides.json)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            rows, first_src, last_src = _drive(page, base)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
            cell = page.locator(".jp-CodeCell", has_text="rb.dashboard(run)").first
            cell.scroll_into_view_if_needed()
            cell.screenshot(path=str(ARTIFACTS / "browser-failure-dashboard.png"))
            raise
        finally:
            browser.close()
    assert 2 <= rows <= 4  # the seed, deltas until converged, at most sync.max_cycles
    assert first_src != last_src  # the plot was redrawn after a later cycle
    assert not (work / "runbooks" / "workspaces").exists()  # the project's, not the kernel's
    journal = (work / "workspaces" / "alice" / "journal.jsonl").read_text()
    assert journal.count('"type": "cycle"') == rows


_ROWS = "document.querySelectorAll('.widget-html table tbody tr')"


def _drive(page: Any, base: str) -> tuple[int, str | None, str | None]:
    """Open the runbook, run all cells, watch the dashboard update, save screenshots."""
    page.goto(f"{base}/lab/tree/runbooks/sync.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    start_kernel(page, base, "runbooks/sync.ipynb")  # the runbook's own kernel
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # the dashboard widget renders: a progress bar, the cycles table, the plot
    page.wait_for_selector(".widget-hprogress", state="attached", timeout=60_000)
    page.wait_for_function(f"() => [...{_ROWS}].some(r => r.textContent.includes('seed'))",
                           timeout=90_000)
    first_rows = int(page.evaluate(f"() => {_ROWS}.length"))
    first_src = page.locator(".widget-image").first.get_attribute("src")
    # ...and updates as cycles complete
    page.wait_for_function(f"() => {_ROWS}.length >= {first_rows + 1}", timeout=90_000)
    page.wait_for_function("() => document.body.innerText.includes('RESULT {')",
                           timeout=120_000)
    rows = int(page.evaluate(f"() => {_ROWS}.length"))
    assert rows > first_rows
    last_src = page.locator(".widget-image").first.get_attribute("src")
    page.locator(".jupyter-widgets").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-sync-runbook.png"), full_page=True)
    page.locator(".jupyter-widgets").first.screenshot(
        path=str(ARTIFACTS / "browser-sync-dashboard.png"))
    return rows, first_src, last_src
