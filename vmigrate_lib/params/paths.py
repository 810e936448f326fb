"""Where relative paths in parameters point: the project, never a kernel's working folder.

By hand, JupyterLab starts a notebook's kernel in the notebook's folder
(``runbooks/``), so ``workspace: workspaces/alice`` and ``lab_root: .vmigrate-lab``
taken from the working folder would point inside ``runbooks/``.  The project root
is the nearest folder, from the params file's folder (or the kernel's working
folder) upward, that holds one of :data:`PROJECT_MARKERS`; where none does, the
starting folder serves (the CLI's working folder, as before).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypeVar

#: What marks a vmigrate project folder: the lab, the workspaces, the runbooks.
PROJECT_MARKERS = (".vmigrate-lab", "workspaces", "runbooks")

H = TypeVar("H")


def project_root(start: Path, fallback: Path | None = None) -> Path:
    """The nearest folder from ``start`` upward holding a project marker, else ``fallback``
    (default ``start``)."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if any((folder / m).exists() for m in PROJECT_MARKERS):
            return folder
    return Path(fallback).resolve() if fallback is not None else start


def lab_root_under(host: H, base: Path) -> H:
    """A lab host's ``lab_root`` made absolute under ``base`` (other hosts unchanged)."""
    root = getattr(host, "lab_root", None)
    if isinstance(root, str) and not Path(root).is_absolute():
        return replace(host, lab_root=str(base / root))  # type: ignore[type-var]
    return host
