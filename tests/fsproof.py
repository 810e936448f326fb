"""File-system proofs for tests: a tree fingerprint (a refused command changed
nothing), a chunked byte compare and a chunked digest (a copy is identical)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def tree_fingerprint(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with size and mtime: 'nothing changed' means this is equal."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def files_equal(a: Path, b: Path, chunk: int = 4 << 20) -> bool:
    """Byte-identical, read in chunks (disks are too big to hold twice)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def sha(path: Path, chunk: int = 4 << 20) -> str:
    """SHA-256 of a file, read in chunks (disks are too big to hold in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
