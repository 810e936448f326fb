"""What an executed runbook notebook says: its machine-readable result, and a failure mark.

papermill marks a failing cell itself, but leaves an execution timeout, a dead kernel
and an interrupt unmarked: :func:`mark_failed` adds papermill's own markers (metadata
``exception``/``status``, per-cell status, a red banner cell) so that the archived
notebook says how the run ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .audit_outputs import RESULT_MIME
from .run_archive import nbformat_module


def mark_failed(nb_path: Path, source: Path, params: Mapping[str, Any], status: str,
                message: str) -> None:
    """Mark an executed notebook failed (papermill leaves timeouts and dead kernels unmarked)."""
    nbformat = nbformat_module()

    if nb_path.exists():
        nb = nbformat.read(nb_path, as_version=4)
    else:
        nb = nbformat.read(source, as_version=4)
    pm = nb.metadata.setdefault("papermill", {})
    pm["exception"] = True
    pm["status"] = status
    # papermill marks the interrupted cell and every later one "completed": the cell
    # that was running is the last one that has a start time; later ones never ran.
    running = None
    for idx, cell in enumerate(nb.cells):
        if cell.metadata.get("papermill", {}).get("start_time"):
            running = idx
    for idx, cell in enumerate(nb.cells):
        cmeta = dict(cell.metadata.get("papermill", {}))
        if running is not None and idx > running:
            cmeta["status"] = "pending"
        elif idx == running:
            cmeta["status"] = "failed"
            cmeta["exception"] = True
            if cell.cell_type == "code":
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="CellTimeoutError" if status == "timeout" else "RunFailed",
                    evalue=message, traceback=[message]))
        cell.metadata["papermill"] = cmeta
    where = f" in cell {running}" if running is not None else ""
    banner = nbformat.v4.new_markdown_cell(
        f'<span style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; '
        f'font-size:2em;">RUN {status.upper()}{where}: {message}</span>')
    banner.metadata["tags"] = ["papermill-error-cell-tag", "vmigrate-run-failed"]
    banner["id"] = "vmigrate-failed-banner"
    nb.cells.insert(0, banner)
    nbformat.write(nb, nb_path)


def read_result(nb_path: Path) -> dict[str, Any] | None:
    """The machine-readable result the runbook displayed, if it got that far."""
    nbformat = nbformat_module()

    if not nb_path.exists():
        return None
    nb = nbformat.read(nb_path, as_version=4)
    found: dict[str, Any] | None = None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if RESULT_MIME in data:
                found = dict(data[RESULT_MIME])
    return found
