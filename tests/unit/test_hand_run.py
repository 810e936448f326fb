"""The hand-run archive's edges without a browser (issue 14 item 2).

Headless (``vmigrate run`` sets VMIGRATE_HEADLESS=1) the last cell archives nothing: the
runner does, and a second folder would be a duplicate.  Outside JupyterLab (no
``JPY_SESSION_NAME``, which jupyter_server sets for the kernels it starts, PR
jupyter-server/jupyter_server#679 and #1100) it says so and archives nothing.  A notebook
never saved with this run's mark is one clear error naming Ctrl+S and install.sh, not a
hang.  The save itself through JupyterLab is tests/browser/test_hand_run_archive.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.audit.evidence import EvidenceError
from vmigrate_lib.faces import hand_run


def test_headless_and_outside_jupyterlab_archive_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run: Any = object()  # never read: nothing is archived
    monkeypatch.setenv("VMIGRATE_HEADLESS", "1")
    monkeypatch.setenv(hand_run.SESSION_ENV, "/x/sync.ipynb")
    assert hand_run.archive(run, {}, None) is None
    assert capsys.readouterr().out == ""
    monkeypatch.delenv("VMIGRATE_HEADLESS")
    monkeypatch.delenv(hand_run.SESSION_ENV)
    assert hand_run.archive(run, {}, None) is None
    assert "not in JupyterLab" in capsys.readouterr().out


def test_relative_session_name_is_the_notebook_beside_the_kernel(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(hand_run.SESSION_ENV, "runbooks/sync.ipynb")
    assert hand_run.notebook_path() == tmp_path / "sync.ipynb"
    monkeypatch.setenv(hand_run.SESSION_ENV, "/srv/p/runbooks/sync.ipynb")
    assert hand_run.notebook_path() == Path("/srv/p/runbooks/sync.ipynb")


def test_an_unsaved_notebook_is_one_clear_error(tmp_path: Path) -> None:
    nb = tmp_path / "sync.ipynb"
    nb.write_text('{"cells": [], "outputs": "vmigrate hand run OLD"}')
    with pytest.raises(EvidenceError) as err:
        hand_run.wait_saved(nb, "vmigrate hand run NEW", timeout=0.5)
    assert "Ctrl+S" in err.value.one_line() and "install.sh" in err.value.one_line()
    nb.write_text('{"x": "vmigrate hand run NEW"}')
    hand_run.wait_saved(nb, "vmigrate hand run NEW", timeout=0.5)
