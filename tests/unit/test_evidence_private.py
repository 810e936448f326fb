"""Evidence files are private whatever the umask: 0700 folders, 0600 files or stricter.

An archive holds the change's parameters, the executed notebook and the journal
slice; it was world-readable (0644 files, 0755 folders) under the usual umask 022.
Real files and folders, no host involved (a real ESXi host plays no part here).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmigrate_lib.audit.evidence import current_umask, make_private, private_dirs, write_private


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def test_under_a_permissive_umask(tmp_path: Path, umask: None) -> None:
    os.umask(0)
    assert current_umask() == 0
    root = private_dirs(tmp_path / "ws" / "evidence")
    assert mode(tmp_path / "ws") == 0o700 and mode(root) == 0o700
    write_private(root / "parameters.yaml", b"vm: alice\n")
    assert mode(root / "parameters.yaml") == 0o600
    (root / "audit").mkdir()  # what papermill, nbconvert and save_audit create
    (root / "audit" / "cycles.csv").write_text("x")
    (root / "run.ipynb").write_text("{}")
    make_private(root)
    assert {p.name: oct(mode(p)) for p in root.rglob("*")} == {
        "parameters.yaml": "0o600", "audit": "0o700", "cycles.csv": "0o600",
        "run.ipynb": "0o600"}


def test_a_stricter_umask_wins_for_files(tmp_path: Path, umask: None) -> None:
    os.umask(0o277)
    root = private_dirs(tmp_path / "evidence")
    assert mode(root) == 0o700  # the owner must still be able to write the archive
    write_private(root / "a", b"x")
    (root / "b").write_text("y")
    make_private(root)
    assert (mode(root / "a"), mode(root / "b")) == (0o400, 0o400)


def test_an_existing_open_folder_is_tightened_only_when_ours(tmp_path: Path) -> None:
    """vmigrate's own evidence root from an older run is tightened; a folder the operator
    named (``--evidence-dir /tmp``) keeps its mode: only the new run folder is private."""
    old = tmp_path / "evidence"
    old.mkdir()
    old.chmod(0o755)
    private_dirs(old)
    assert mode(old) == 0o755
    private_dirs(old, tighten=True)
    assert mode(old) == 0o700


def test_write_private_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError):
        write_private(tmp_path / "link", b"secret")
    assert target.read_text() == "keep"
