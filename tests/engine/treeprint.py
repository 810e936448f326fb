"""A fingerprint of a folder tree, to prove that a refused command changed nothing."""

from __future__ import annotations

import os
from pathlib import Path


def tree_fingerprint(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with size and mtime: 'nothing changed' means this is equal."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out
