"""By hand in JupyterLab: the sync runbook runs against the lab, the dashboard renders live.

JupyterLab is started on 127.0.0.1 with a temporary HOME and Jupyter dirs, no
token; Debian's chromium is driven through Python Playwright (no browser download).
The screenshot lands in ``artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        data: bytes = r.read()
        return data


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A token-less JupyterLab serving a folder with the sync runbook and a running lab."""
    work = tmp_path / "work"
    work.mkdir()
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
    (work / "sync.ipynb").write_text(json.dumps(nb))
    lab_up(work / ".vmigrate-lab", disk_sizes=(32 << 20, 16 << 20), fill=0.25,
           workload=WorkloadSpec(rate_mb_s=2.0, ack_interval=0.2))
    env = dict(os.environ)
    for var, sub in (("HOME", "home"), ("JUPYTER_CONFIG_DIR", "cfg"),
                     ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "rt"),
                     ("IPYTHONDIR", "ipy")):
        (tmp_path / sub).mkdir()
        env[var] = str(tmp_path / sub)
    env.pop("VMIGRATE_HEADLESS", None)
    settings = tmp_path / "cfg" / "lab" / "user-settings" / "@jupyterlab"
    for plugin, values in (("notebook-extension/tracker", {"windowingMode": "none"}),
                           ("apputils-extension/notification", {"fetchNews": "false"})):
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port = _free_port()
    log = open(tmp_path / "jupyterlab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--IdentityProvider.token=", "--ServerApp.password=",
         "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={work}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/api/status")
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "jupyterlab.log").read_text()[-3000:]) from exc
                time.sleep(0.3)
        yield base, work
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        lab_down(work / ".vmigrate-lab", timeout=5)


def test_sync_runbook_dashboard_renders_and_updates(jupyterlab: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    base, work = jupyterlab
    settings = json.loads(_get(
        f"{base}/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin"))
    assert settings["schema"]["properties"]["saveState"]["default"] is True, \
        "widget state saving is off: run jupyter/install.sh (ships overrides.json)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
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
    journal = (work / "workspaces" / "alice" / "journal.jsonl").read_text()
    assert journal.count('"type": "cycle"') == rows


_ROWS = "document.querySelectorAll('.widget-html table tbody tr')"


def _drive(page: Any, base: str) -> tuple[int, str | None, str | None]:
    """Open the runbook, run all cells, watch the dashboard update, save screenshots."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{base}/lab/tree/sync.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    select = page.locator(".jp-Dialog button", has_text="Select")
    try:  # a fresh JupyterLab asks which kernel to start: the runbook's own
        select.wait_for(timeout=10_000)
        select.click()
    except PlaywrightTimeout:
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=60_000)
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
