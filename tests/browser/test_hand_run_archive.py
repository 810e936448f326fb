"""A hand run is evidence too (issue 14 item 2 and its review): Run All in JupyterLab ends in
a sealed archive, a failed one too, holding every cell's output, and the runbook file is left
as it was.

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

Review of that (three gaps, each failing here before): the archive lacked the last cell's
own output (the evidence path/verify line the operator saw last: the notebook was saved
before the cell printed it); a hand run that stopped on an error (Run All stops at the
failing cell, the last cell never runs) left no evidence at all, where ``vmigrate run``
archives a failure marked FAILED; and the save for the archive wrote the outputs into the
runbook file itself (``git diff`` dirty, ``vmigrate run`` then warns it differs).  Now the
last cell says where the evidence goes before the save, a vmigrate error in any cell
(IPython's ``set_custom_exc`` handler the first cell installs) saves and archives the run
marked failed, and after the archive the runbook file holds the bytes it had before the
run (the tab keeps showing the run; JupyterLab's save-time conflict check compares the
file's modification time, ``Context._maybeSave`` in @jupyterlab/docregistry, so the file
keeps the time of the save).

What only a real ESXi/vCenter host would show: nothing here depends on the host kind;
the hosts are the local lab's.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.jlab import ARTIFACTS, CHROMIUM, IDLE, REPO, jupyterlab, launch, start_kernel
from tests.runbooks.test_no_duplicate_lines import notebook_lines, problems
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
    no pause; a second copy whose VM is not in the lab) and a running lab."""
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
    for cell in nb["cells"]:
        if "parameters" in cell["metadata"].get("tags", []):
            cell["source"] = (cell["source"].replace('vm = "alice"', 'vm = "nosuchvm"')
                              .replace('"workspaces/alice"', '"workspaces/nosuchvm"'))
    (work / "runbooks" / "missing-vm.ipynb").write_text(json.dumps(nb, indent=2))
    lab_up(work / ".vmigrate-lab", disk_sizes=(16 << 20,), fill=0.25,
           workload=WorkloadSpec(rate_mb_s=1.0, ack_interval=0.2))
    try:
        with jupyterlab(tmp_path, work) as base:
            yield base, work
    finally:
        lab_down(work / ".vmigrate-lab", timeout=5)


def _run_all(page: Any, base: str, name: str, until: tuple[str, ...]) -> tuple[str, str]:
    """Open the runbook, Run All Cells, wait until the page shows one of ``until`` (or an
    error) and the kernel is idle again; returns the page's text and the last cell's
    output text."""
    page.set_default_timeout(120_000)  # a loaded machine (2 shared cores) is slow, not wrong
    page.goto(f"{base}/lab/tree/runbooks/{name}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=300_000)
    start_kernel(page, base, f"runbooks/{name}")
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function(f"() => {json.dumps(list(until))}.some("
                           "t => document.body.innerText.includes(t))", timeout=600_000)
    page.wait_for_selector(IDLE, timeout=600_000)
    page.wait_for_timeout(1000)  # the last outputs rendered
    page.screenshot(path=str(ARTIFACTS / f"browser-hand-run-{name}.png"), full_page=True)
    text: str = page.evaluate("() => document.body.innerText")
    last: str = page.locator(".jp-Notebook .jp-CodeCell").last.locator(
        ".jp-OutputArea").inner_text()
    return text, last


def _outputs_text(cell: dict[str, Any]) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append("".join(o.get("text", "")) + "\n".join(o.get("traceback", [])))
    return "\n".join(out)


def _archived(workspace: Path) -> Path:
    """The one evidence folder of the workspace once it is sealed (read-only: the seal is
    the archive's last step but the journal's record, which a workspace that never began,
    like a missing VM's, does not have): the kernel may still be sealing when the page is
    idle."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        folders = sorted((workspace / "evidence").glob("*-sync-*"))
        if len(folders) == 1 and (folders[0] / "MANIFEST.sha256").exists() \
                and not folders[0].stat().st_mode & 0o222:
            if not (workspace / "state.json").exists():
                return folders[0]
            if '"evidence_archived"' in (workspace / "journal.jsonl").read_text():
                return folders[0]
        time.sleep(0.5)
    raise AssertionError(f"no sealed evidence folder under {workspace}/evidence")


def _verified(folder: Path) -> None:
    proc = subprocess.run([str(VMIGRATE), "evidence", "verify", str(folder)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hand_run_ends_in_a_verified_archive(project: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    base, work = project
    runbook = work / "runbooks" / "sync.ipynb"
    before = runbook.read_bytes()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            text, last = _run_all(browser.new_page(viewport={"width": 1400, "height": 1000}),
                                  base, "sync.ipynb", ("evidence: ", "Error:"))
        finally:
            browser.close()
    assert "evidence: " in text, text[-2000:]
    folder = _archived(work / "workspaces" / "alice")
    _verified(folder)
    names = {str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()}
    for name in ("sync.ipynb", "sync.html", "parameters.yaml", "journal.jsonl", "run.json",
                 "environment.json", "git.json", "MANIFEST.sha256", "audit/cycles.csv",
                 "audit/downtime.png"):
        assert name in names, sorted(names)
    nb = json.loads((folder / "sync.ipynb").read_text())
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "RESULT {" in outputs  # the run's outputs, saved from the page
    assert "application/vnd.jupyter.widget-state+json" in nb["metadata"].get("widgets", {})
    # the last cell's output as the operator saw it, line for line, is in the archive
    archived_last = _outputs_text([c for c in nb["cells"] if c["cell_type"] == "code"][-1])
    assert f"evidence: {folder}" in last, last
    seen = [line.strip() for line in last.splitlines() if line.strip()]
    assert seen and all(line in archived_last for line in seen), (last, archived_last)
    said = problems(notebook_lines(folder / "sync.ipynb"))  # each fact once (item 4)
    assert not said, said
    cycles = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    assert any(r["type"] == "cycle" for r in cycles)
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok" and run["mode"] == "by hand in JupyterLab"
    assert run["result"]["runbook"] == "sync"
    journal = (work / "workspaces" / "alice" / "journal.jsonl").read_text()
    assert f'"folder": "{folder}"' in journal  # the chain verify checks
    assert runbook.read_bytes() == before  # the runbook file as it was: no outputs in it


def test_failed_hand_run_ends_in_a_verified_archive_marked_failed(
        project: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    base, work = project
    runbook = work / "runbooks" / "missing-vm.ipynb"
    before = runbook.read_bytes()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            text, _last = _run_all(
                browser.new_page(viewport={"width": 1400, "height": 1000}), base,
                "missing-vm.ipynb", ("this failed run's evidence: ", "Error:"))
        finally:
            browser.close()
    assert "VmNotFound: no VM 'nosuchvm'" in text, text[-2000:]
    folder = _archived(work / "workspaces" / "nosuchvm")
    _verified(folder)
    assert (folder / "FAILED").read_text().startswith("failed: no VM 'nosuchvm'")
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "failed" and run["error"]["error"] == "VmNotFound"
    assert run["mode"] == "by hand in JupyterLab"
    nb = json.loads((folder / "sync.ipynb").read_text())
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "VmNotFound" in outputs  # the error as the operator saw it
    assert runbook.read_bytes() == before
