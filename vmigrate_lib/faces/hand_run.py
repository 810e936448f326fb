"""A run by hand in JupyterLab ends in the same sealed archive as ``vmigrate run``.

The executed notebook's outputs and widget state exist only in the browser, so the
runbook's last cell (:func:`archive`) first says where the evidence goes (everything
the cell shows is said before the save, so the archive holds all of it), then has the
page save the notebook: it displays JavaScript, carrying this run's mark, that saves the
notebook's document through
JupyterLab's application object (``window.jupyterapp``, which JupyterLab exposes when
``LabApp.expose_app_in_browser`` is on; ``jupyter/install.sh`` turns it on; output
made in this session is trusted, so the script runs), and waits until the file on
disk carries the mark.  The operator may also press Ctrl+S: any save that carries the
mark will do.  The saved notebook then goes through the runner's archive steps
(:mod:`.run_archive`): journal slice, audit CSV/PNG, versions, commit, summary,
HTML, manifest, signature, seal, journal record; then the runbook file is left as it
was (:mod:`.runbook_file`).  A run that stops on an error is archived too, marked
failed (:func:`archive_failed`, called by the error handler the first cell installs,
:mod:`.runbook_run`), as ``vmigrate run`` archives a failure; a run refused at its
parameters is not (nothing ran, as ``vmigrate run`` refuses it before a kernel).

Under ``vmigrate run`` (papermill, ``VMIGRATE_HEADLESS=1``) it does nothing: the
runner archives.  Outside JupyterLab (no ``JPY_SESSION_NAME``) it says so.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..audit.dashboard import HEADLESS_ENV, ipd
from ..audit.evidence import EvidenceError
from ..engine.workspace import Workspace
from ..errors import VmigrateError
from ..params.paths import project_root
from . import runbook_file
from .executed import mark_failed
from .run_archive import archive_outputs, finish_document, journal_archived, prepare_folder, seal
from .runbook_params import RUNBOOK_PARAMETERS, RunbookParams
from .runbook_run import HAND_RUN_START, ON_BEGIN, ON_FAILED

#: JupyterLab's kernels see the notebook's path here (jupyter_server's SessionManager).
SESSION_ENV = "JPY_SESSION_NAME"
MARK = "vmigrate hand run"

_SAVE_JS = """// %s: saving the notebook to archive it (if this waits, press Ctrl+S)
(async () => {
  const target = %s;
  const app = window.jupyterapp;
  if (!app) { console.warn('vmigrate: JupyterLab app not exposed; save with Ctrl+S'); return; }
  let saved = false;
  for (const w of app.shell.widgets('main')) {
    const ctx = w.context;
    if (ctx && ctx.path && (target === ctx.path || target.endsWith('/' + ctx.path))) {
      await ctx.save();
      saved = true;
    }
  }
  if (!saved) { await app.commands.execute('docmanager:save'); }
})();
"""


def notebook_path() -> Path | None:
    """The notebook this kernel runs, as JupyterLab started it (None outside JupyterLab).

    jupyter_server 2.x gives the absolute path (its ``SessionManager.get_kernel_env``);
    a relative one is the server root's, and the kernel runs in the notebook's folder."""
    name = os.environ.get(SESSION_ENV)
    if not name or not name.endswith(".ipynb"):
        return None
    path = Path(name)
    return path if path.is_absolute() else Path.cwd() / path.name


def request_save(path: Path) -> str:
    """Have the page save the notebook; returns this run's mark, which the displayed
    script carries (saved with the output), so the saved file proves this run's save."""
    mark = f"{MARK} {uuid.uuid4().hex}"
    ipd().display({"application/javascript": _SAVE_JS % (mark, json.dumps(str(path)))},
                  raw=True)
    return mark


def wait_saved(path: Path, mark: str, timeout: float) -> None:
    """Until the file on disk carries ``mark`` (this run's outputs were saved)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if mark in path.read_text(encoding="utf-8"):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise EvidenceError(
                f"the notebook {path} was not saved with this run's outputs within "
                f"{timeout:.0f} s", folder=str(path),
                hint="save it (Ctrl+S) and run this cell again; for an automatic save run "
                "jupyter/install.sh (expose_app_in_browser) and restart JupyterLab")
        time.sleep(0.3)


def given_parameters(kind: str, names: Mapping[str, Any]) -> dict[str, Any]:
    """The runbook's parameters as the notebook's globals hold them."""
    return {k: names[k] for k in sorted(RUNBOOK_PARAMETERS[kind]) if k in names}


def begin() -> None:
    """A run begins (the runbook's first cell): keep the runbook file's bytes, to leave it
    as it was after the archive (:mod:`.runbook_file`); nothing archived yet."""
    ARCHIVING.clear()
    runbook_file.remember(notebook_path() if in_jupyterlab() else None)


def in_jupyterlab() -> bool:
    """A kernel JupyterLab started, not the runner's (which archives itself)."""
    return os.environ.get(HEADLESS_ENV) != "1" and notebook_path() is not None


#: Set while (or once) this run is archived: a failure of the archive itself is not
#: archived again by the error handler.
ARCHIVING: set[str] = set()


def archive(run: RunbookParams, names: Mapping[str, Any], result: Mapping[str, Any] | None,
            *, timeout: float = 120.0) -> Path | None:
    """The last cell: save this notebook through JupyterLab and archive it as ``vmigrate
    run`` would; returns the sealed folder (None headless, where the runner archives, or
    outside JupyterLab)."""
    if os.environ.get(HEADLESS_ENV) == "1":
        return None
    if notebook_path() is None:
        print("not in JupyterLab: no evidence archived (vmigrate run archives a run)",
              flush=True)
        return None
    return save_and_archive(run, names, result, None, timeout=timeout)


def archive_failed(run: RunbookParams, names: Mapping[str, Any], error: BaseException,
                   *, timeout: float = 120.0) -> Path | None:
    """A cell of a hand run stopped on ``error`` (called by the runbooks' error handler,
    :mod:`.runbook_run`): archive the run marked failed, as ``vmigrate run`` archives a
    failure.  Never raises (it runs inside IPython's handler): a problem is one line."""
    if not in_jupyterlab() or ARCHIVING:
        return None
    message = error.one_line() if isinstance(error, VmigrateError) else str(error)
    code = int(error.exit_code) if isinstance(error, VmigrateError) else 1
    failure = {"error": type(error).__name__, "message": message, "exit_code": code}
    try:
        return save_and_archive(run, names, None, failure, timeout=timeout)
    except (VmigrateError, OSError, ValueError) as exc:
        print(f"no evidence archived for this failed run: {exc}", flush=True)
        return None


def save_and_archive(run: RunbookParams, names: Mapping[str, Any],
                     result: Mapping[str, Any] | None, failure: Mapping[str, Any] | None,
                     *, timeout: float) -> Path:
    """Name the evidence folder, have the page save the notebook, archive the saved copy,
    leave the runbook file as it was.  Everything the cell shows is said before the save,
    so the archive holds the whole of it (the archive's path and how to verify it)."""
    ARCHIVING.add("archiving")
    kind, params = run.kind, given_parameters(run.kind, names)
    ws = Workspace(run.migration.workspace)
    path = notebook_path()
    assert path is not None  # checked by the callers
    folder = prepare_folder(kind, params, None, None, ws)
    what = "this failed run's evidence" if failure else "evidence"
    print(f"{what}: {folder} (sealed when this cell ends; check it with: vmigrate evidence "
          f"verify {folder})", flush=True)
    try:
        mark = request_save(Path(os.environ[SESSION_ENV]))
        wait_saved(path, mark, timeout)
        saved, mtime = path.read_bytes(), path.stat().st_mtime_ns
        (folder / f"{kind}.ipynb").write_bytes(saved)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing archived: no half folder stays
        raise
    try:
        runbook_file.restore(path, saved, mtime)
    finally:
        seal_saved(run, params, result, failure, folder, path)
    return folder


def seal_saved(run: RunbookParams, params: Mapping[str, Any], result: Mapping[str, Any] | None,
               failure: Mapping[str, Any] | None, folder: Path, path: Path) -> None:
    """Run the archive steps of ``vmigrate run`` on the notebook saved in ``folder``."""
    kind = run.kind
    ws = Workspace(run.migration.workspace)
    start = HAND_RUN_START or {"started": time.time(), "offset": 0}
    saved_nb = folder / f"{kind}.ipynb"
    nb = json.loads(saved_nb.read_text(encoding="utf-8"))
    kernel = str(nb.get("metadata", {}).get("kernelspec", {}).get("name", "unknown"))
    status = "failed" if failure else "ok"
    if failure:
        mark_failed(saved_nb, saved_nb, params, status, str(failure["message"]))
    offset = int(start["offset"])
    notes = archive_outputs(folder, kind, params, path, kernel, ws, offset)
    ended = time.time()
    record: dict[str, Any] = {
        "runbook": kind, "mode": "by hand in JupyterLab", "status": status,
        "started": start["started"], "ended": ended,
        "duration_s": round(ended - float(start["started"]), 3),
        "error": dict(failure) if failure else None,
        "result": dict(result) if result is not None else None,
        "change_id": run.change_id, "operator": run.migration.operator, "kernel": kernel,
        "cwd": str(Path.cwd()), "notebook": str(path), "params_file": "",
        "journal_offset": offset, "base_dir": str(project_root(path.parent)), **notes,
    }
    html_error = finish_document(folder, kind, record)
    if html_error:
        record["html_export_error"] = html_error
    _redactions, manifest, _signed = seal(folder, record, params)
    journal_archived(ws, kind, status, folder, manifest)


# A new run resets the hand-run archive's state; a failing cell archives the run (the
# runbooks' error handler in :mod:`.runbook_run` calls these without importing this module).
if begin not in ON_BEGIN:
    ON_BEGIN.append(begin)
if archive_failed not in ON_FAILED:
    ON_FAILED.append(archive_failed)
