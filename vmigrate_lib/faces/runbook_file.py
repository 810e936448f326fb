"""A hand run leaves its runbook file as it was: the outputs go to the evidence, not to git.

To archive a hand run, JupyterLab saves the notebook (:mod:`.hand_run`): that writes the
run's outputs and widget state into ``runbooks/<kind>.ipynb`` itself, so the committed
runbook is dirty and ``vmigrate run`` later warns that it differs.  After the saved copy is
archived, :func:`restore` writes the file back: the bytes it had when the run began when
the operator changed no cell, else the saved cells (their edits kept: a parameters cell
edited for this migration) with every output cleared.  The JupyterLab tab keeps showing the
run.  Why this rather than running hand runs on a copy: the operator opens the runbook the
README names and gets its evidence; nothing new to learn, and no copies to clean up.

JupyterLab refuses a later save as a conflict when the file on disk is newer than its own
last save by more than 500 ms (``Context._maybeSave`` in @jupyterlab/docregistry), so the
restored file keeps the modification time of the save it replaces.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic

#: The runbook file's bytes when this kernel's run began (its first cell), by path.
BEFORE: dict[str, bytes] = {}


def remember(path: Path | None) -> None:
    """Keep the runbook file's bytes as the run begins (nothing outside JupyterLab)."""
    BEFORE.clear()
    if path is not None:
        try:
            BEFORE[str(path)] = path.read_bytes()
        except OSError:
            pass


def _cells(nb: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(c.get("cell_type")), "".join(c.get("source", "")))
            for c in nb.get("cells", [])]


def _has_outputs(nb: dict[str, Any]) -> bool:
    return any(c.get("outputs") or c.get("execution_count") is not None
               for c in nb.get("cells", []) if c.get("cell_type") == "code")


def cleared(nb: dict[str, Any]) -> bytes:
    """``nb`` without outputs, execution counts, timing or widget state, written as
    jupyter_server writes a notebook (nbformat's JSON: indent 1, sorted keys)."""
    out = json.loads(json.dumps(nb))
    for cell in out.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    out.get("metadata", {}).pop("widgets", None)
    return (json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def restored(saved: bytes, before: bytes | None) -> bytes:
    """What the runbook file holds after the archive: ``before`` when the saved notebook
    has the same cells and ``before`` had no outputs, else the saved cells cleared."""
    nb = json.loads(saved)
    if before is not None:
        try:
            old = json.loads(before)
        except ValueError:
            old = None
        if isinstance(old, dict) and _cells(old) == _cells(nb) and not _has_outputs(old):
            return before
    return cleared(nb)


def restore(path: Path, saved: bytes, saved_mtime_ns: int) -> None:
    """Write the runbook file back (see the module's docstring), keeping its mode and the
    save's modification time."""
    data = restored(saved, BEFORE.get(str(path)))
    mode = path.stat().st_mode & 0o7777
    write_atomic(path, data, mode=mode)
    os.utime(path, ns=(saved_mtime_ns, saved_mtime_ns))
