"""The shipped notebooks: committed without outputs, and the two by-hand notebooks run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill as pm
import pytest

from tests.runbooks.notebook_tables import displayed_table
from vmigrate_lib.faces.papermill_runner import pick_kernel

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "runbooks").glob("*.ipynb")) + sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_parameters(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, path.name
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "widgets" not in nb.metadata


def test_walkthrough_then_comparison(tmp_path: Path) -> None:
    kernel = pick_kernel()
    out = tmp_path / "walk.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "rehearsal-walkthrough.ipynb"), str(out),
                        parameters={"folder": str(tmp_path / "rh")}, kernel_name=kernel,
                        cwd=str(tmp_path), progress_bar=False)
    texts = "".join(o.get("text", "") for c in nbformat.read(out, 4).cells
                    for o in c.get("outputs", []))
    assert "sync runbook OK" in texts and "cutover runbook OK" in texts
    assert texts.count(" verified ") == 2
    cmp_out = tmp_path / "compare.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "compare-evidence.ipynb"), str(cmp_out),
                        parameters={"evidence_root": str(tmp_path / "rh")}, kernel_name=kernel,
                        cwd=str(tmp_path), progress_bar=False)
    runs = displayed_table(nbformat.read(cmp_out, 4).cells, "runs_frame(")
    assert sorted(r["runbook"] for r in runs) == ["cutover", "sync"], runs
    assert [r["verified"] for r in runs] == ["True", "True"], runs
