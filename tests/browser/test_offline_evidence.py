"""Archived evidence reads offline and starts with what a change board reads first.

The sync runbook runs headless against a real lab (papermill, a real kernel, real
widgets); the archive's HTML is then opened in Debian's Chromium through Playwright
with every request that is not the file itself aborted (Playwright routing).  Proves
(issue 14 items 5 and 6): the page asks nothing from the network (before: require.js
from cdnjs, the widget manager ``@jupyter-widgets/html-manager@*`` from unpkg, MathJax),
every plot is drawn and every table visible, the dashboard cell shows its final state
(progress, status, plot; before it was blank offline), and the page's title and first
block are the summary (change, operator, dates with zone, outcome, certify digests,
versions, commit, approval), with the runbook's default parameters left out.  A real
ESXi host would change only the figures, not the document.  Screenshot in artifacts/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.jlab import ARTIFACTS, CHROMIUM, launch
from tests.runbooks.conftest import lab, params  # noqa: F401  (fixtures)
from vmigrate_lib.audit.evidence import verify_or_raise
from vmigrate_lib.faces.papermill_runner import run_runbook

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


def _check_document(folder: Path) -> str:
    nb = nbformat.read(folder / "sync.ipynb", as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for text in ("change CHG-TEST-1", "| Operator | pytest |", " UTC (", "**OK**",
                 "| Cycles | ", "source digest", "Git commit", "MANIFEST.sha256", "Approval"):
        assert text in first.source, (text, first.source)
    html = (folder / "sync.html").read_text()
    assert "<title>sync runbook, change CHG-TEST-1</title>" in html
    assert "lab-rehearsal" not in html  # the runbook's default operator: not this run's
    assert "CHG-LAB-0001" not in html
    return html


def test_evidence_html_offline_with_summary(lab: Path, params: dict[str, Any]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    run = run_runbook("sync", params, cwd=lab)
    assert run.status == "ok", run.error
    verify_or_raise(run.folder)
    _check_document(run.folder)
    page_url = (run.folder / "sync.html").as_uri()
    outside: list[str] = []

    def only_the_file(route: Any) -> None:
        if route.request.url == page_url or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_the_file)
            page.goto(page_url, wait_until="load")
            page.screenshot(path=str(ARTIFACTS / "evidence-offline.png"), full_page=True)
            imgs = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])")
            tables = page.eval_on_selector_all(
                "table", "els => els.map(e => e.getBoundingClientRect().height)")
            dash = page.locator("progress")
            dash_visible = dash.count() >= 1 and dash.first.is_visible()
            heading = page.locator("h1").first.inner_text()
        finally:
            browser.close()
    assert outside == [], outside
    assert len(imgs) >= 5 and all(ok and width > 0 for ok, width, _ in imgs), imgs
    assert any(alt == "dashboard plot" for _, _, alt in imgs), imgs  # the widget, static
    assert dash_visible
    assert len(tables) >= 3 and all(h > 0 for h in tables), tables
    assert heading.startswith("Evidence: sync runbook, change CHG-TEST-1")
