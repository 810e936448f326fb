"""By hand = headless (issue 14 items 3, 4, 10), with a real kernel and the real lab.

A hand run is the shipped runbook executed cell by cell in one kernel whose working
folder is the notebook's own (``<project>/runbooks``), as JupyterLab starts it: the
relative ``workspace`` and ``lab_root`` must mean the project's folders, and Run All a
second time in the same kernel must work.  Before: HostNotFound "no lab host 'esx-a'
under <project>/runbooks/.vmigrate-lab" (although the lab was up), and after a fix of
that by hand, the second Run All stopped at "missing parameter vm".  Then a headless
run under another change ticket is refused until ``continue_change`` names the
workspace's change (before: silently continued as the next cycle), and ``vmigrate
run`` warns when the runbook differs from its committed version (before: only
``git.json`` recorded it).  JupyterLab's own kernel start (cwd = the notebook's folder)
is what jupyter_server does for every notebook; only the browser test drives it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from tests.runbooks.conftest import MiB
from vmigrate_lib.audit.tables import read_journal
from vmigrate_lib.errors import ChangeMismatch
from vmigrate_lib.faces.cli import main
from vmigrate_lib.faces.papermill_runner import RUNBOOKS_ENV, pick_kernel, run_runbook
from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

REPO = Path(__file__).resolve().parents[2]


def _hand_copy(project: Path) -> Any:
    """The sync runbook as a newcomer edits it in JupyterLab: their change, few cycles."""
    nb = nbformat.read(REPO / "runbooks" / "sync.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    old = 'sync = {"max_cycles": 10, "target_interval": "5s"}'
    assert old in cell.source and 'workspace = "workspaces/alice"' in cell.source
    assert '"lab_root": ".vmigrate-lab"' in cell.source  # relative, as shipped
    cell.source = (cell.source.replace(old, 'sync = {"max_cycles": 3, "target_interval": "1s"}')
                   .replace('"CHG-LAB-0001"', '"CHG-HAND-1"'))
    (project / "runbooks").mkdir()
    nbformat.write(nb, project / "runbooks" / "sync.ipynb")
    return nb


def _run_all(client: NotebookClient, nb: Any) -> str:
    """Run every code cell in the client's kernel; the text the cells printed."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            client.execute_cell(cell, index)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def test_hand_run_twice_then_another_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    lab_up(project / ".vmigrate-lab", disk_sizes=(16 * MiB, 8 * MiB), fill=0.25,
           workload=WorkloadSpec(rate_mb_s=2.0, ack_interval=0.2))
    try:
        nb = _hand_copy(project)
        client = NotebookClient(nb, kernel_name=pick_kernel(), timeout=300,
                                resources={"metadata": {"path": str(project / "runbooks")}})
        with client.setup_kernel():
            first = _run_all(client, nb)
            second = _run_all(client, nb)  # Run All again, same kernel, no restart
        assert "RESULT {" in first and "RESULT {" in second, second[-2000:]
        assert not (project / "runbooks" / "workspaces").exists()
        journal = project / "workspaces" / "alice" / "journal.jsonl"
        runs = [r for r in read_journal(journal) if r["type"] == "runbook"]
        assert [r["change_id"] for r in runs] == ["CHG-HAND-1", "CHG-HAND-1"]

        # headless, under another ticket: refused before anything is written or started
        params = yaml.safe_load(json.dumps(_cell_params(nb)))
        other = {**params, "change_id": "CHG-OTHER-2"}
        with pytest.raises(ChangeMismatch) as refused:
            run_runbook("sync", other, cwd=project)
        assert refused.value.exit_code == 2
        assert "belongs to change CHG-HAND-1" in refused.value.one_line()
        assert "continue_change" in refused.value.one_line()
        assert not (project / "workspaces" / "alice" / "evidence").exists()

        # continued explicitly, from the CLI, with a runbook edited since its commit
        runbooks = _modified_runbooks(tmp_path / "site")
        monkeypatch.setenv(RUNBOOKS_ENV, str(runbooks))
        (project / "params.yaml").write_text(yaml.safe_dump(other))
        monkeypatch.chdir(tmp_path)  # paths resolve from the params file's project
        rc = main(["--quiet", "run", "sync", "-p", str(project / "params.yaml"),
                   "--set", "continue_change=CHG-HAND-1"])
        err = capsys.readouterr().err
        assert rc == 0, err
        assert "differs from its committed version" in err
        assert "unsigned: no signing key configured" in err
        runs = [r for r in read_journal(journal) if r["type"] == "runbook"]
        assert runs[-1]["change_id"] == "CHG-OTHER-2"
        assert runs[-1]["continues"] == "CHG-HAND-1"
    finally:
        lab_down(project / ".vmigrate-lab", timeout=5)


def _cell_params(nb: Any) -> dict[str, Any]:
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    ns: dict[str, Any] = {}
    exec(cell.source, ns)
    ns.pop("__builtins__")
    ns.pop("continue_change")
    return ns


def _modified_runbooks(site: Path) -> Path:
    """A site's git checkout of the runbooks, with sync.ipynb edited after its commit."""
    runbooks = site / "runbooks"
    runbooks.mkdir(parents=True)
    for name in ("sync.ipynb", "cutover.ipynb"):
        shutil.copy(REPO / "runbooks" / name, runbooks / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(site)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "runbooks"], check=True)
    nb = nbformat.read(runbooks / "sync.ipynb", as_version=4)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("A local note."))
    nbformat.write(nb, runbooks / "sync.ipynb")
    return runbooks
