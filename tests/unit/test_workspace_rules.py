"""``workspace:`` is a folder vmigrate owns, or a new or empty one (issue 9, item 14).

A workspace that is ``/``, somebody's non-empty folder or a datastore would
receive ``state.json``, a journal, ``.lock`` and evidence among files that are
not vmigrate's (and, made 0700 by the workspace code, lock their owner out).
These tests use real folders; nothing here needs a real ESXi host, except that
on ESXi the datastores are mounted under ``/vmfs/volumes`` (VMware, "Datastore
paths", vSphere Storage guide), which is what the vSphere rule refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmigrate_lib.errors import ParameterError
from vmigrate_lib.params import validate

BASE = {
    "vm": "alice",
    "source": {"type": "lab", "host": "esx-a", "lab_root": "lab"},
    "destination": {"type": "lab", "host": "esx-b", "lab_root": "lab"},
}


def _check(tmp_path: Path, workspace: str, **over: object) -> Path:
    return validate({**BASE, **over, "workspace": workspace}, base_dir=tmp_path).workspace


def _refused(tmp_path: Path, workspace: str, words: str, **over: object) -> None:
    with pytest.raises(ParameterError) as exc:
        _check(tmp_path, workspace, **over)
    assert words in exc.value.one_line(), exc.value.one_line()
    assert exc.value.exit_code == 2


def test_new_empty_and_own_folders_are_fine(tmp_path: Path) -> None:
    assert _check(tmp_path, "workspaces/alice") == tmp_path / "workspaces" / "alice"
    (tmp_path / "empty").mkdir()
    assert _check(tmp_path, "empty") == tmp_path / "empty"
    own = tmp_path / "own"
    own.mkdir()
    (own / "state.json").write_text(json.dumps({"version": 1, "migration_id": "abc"}))
    (own / "journal.jsonl").write_text("")
    (own / "notes.txt").write_text("the operator's own notes beside the state")
    assert _check(tmp_path, "own") == own
    runs_only = tmp_path / "runs-only"  # a refused or failed first run left its evidence
    (runs_only / "evidence").mkdir(parents=True)
    (runs_only / ".lock").write_text("")
    assert _check(tmp_path, "runs-only") == runs_only


def test_root_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, "/", "workspace / is not a folder vmigrate created")


def test_unrelated_non_empty_folder_is_refused(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("x")
    _refused(tmp_path, "docs", "is not a folder vmigrate created")
    (docs / "state.json").write_text("not json")  # a file named state.json is not ours
    _refused(tmp_path, "docs", "is not a folder vmigrate created")


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    _refused(tmp_path, "f", "is not a folder")
    _refused(tmp_path, "f/ws", "is not a folder")


def test_a_datastore_is_refused(tmp_path: Path) -> None:
    ds = tmp_path / "lab" / "hosts" / "esx-b" / "datastores" / "datastore1"
    ds.mkdir(parents=True)
    _refused(tmp_path, str(ds), "is inside the lab")
    _refused(tmp_path, "lab/ws", "is inside the lab")
    real = {"type": "vsphere", "host": "esx-a", "url": "https://vc", "password_env": "PW"}
    _refused(tmp_path, "/vmfs/volumes/datastore1/ws", "is inside a datastore",
             hosts="real", source=real, destination={**real, "host": "esx-b"})


def test_a_symlink_to_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/")
    _refused(tmp_path, "link", "is not a folder vmigrate created")
