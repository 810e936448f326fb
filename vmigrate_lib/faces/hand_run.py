"""A run by hand in JupyterLab ends in the same sealed archive as ``vmigrate run``.

The executed notebook's outputs and widget state exist only in the browser, so the
runbook's last cell (:func:`archive`) first has the page save the notebook: it prints
a run mark, displays JavaScript that saves the notebook's document through
JupyterLab's application object (``window.jupyterapp``, which JupyterLab exposes when
``LabApp.expose_app_in_browser`` is on; ``jupyter/install.sh`` turns it on; output
made in this session is trusted, so the script runs), and waits until the file on
disk carries the mark.  The operator may also press Ctrl+S: any save that carries the
mark will do.  The saved notebook then goes through the runner's archive steps
(:mod:`.run_archive`): journal slice, audit CSV/PNG, versions, commit, summary,
HTML, manifest, signature, seal, journal record.

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
from ..params.paths import project_root
from . import notebook as rb
from .run_archive import archive_outputs, finish_document, journal_archived, prepare_folder, seal
from .runbook_params import RUNBOOK_PARAMETERS, RunbookParams

#: JupyterLab's kernels see the notebook's path here (jupyter_server's SessionManager).
SESSION_ENV = "JPY_SESSION_NAME"
MARK = "vmigrate hand run"

_SAVE_JS = """
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
    """Print this run's mark and have the page save the notebook; returns the mark."""
    mark = f"{MARK} {uuid.uuid4().hex}"
    print(f"{mark}: saving the notebook to archive it (if this waits, press Ctrl+S)",
          flush=True)
    ipd().display({"application/javascript": _SAVE_JS % json.dumps(str(path))}, raw=True)
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


def archive(run: RunbookParams, names: Mapping[str, Any], result: Mapping[str, Any] | None,
            *, timeout: float = 120.0) -> Path | None:
    """Save this notebook through JupyterLab and archive it as ``vmigrate run`` would;
    returns the sealed folder (None headless, where the runner archives, or outside
    JupyterLab)."""
    if os.environ.get(HEADLESS_ENV) == "1":
        return None
    path = notebook_path()
    if path is None:
        print("not in JupyterLab: no evidence archived (vmigrate run archives a run)",
              flush=True)
        return None
    mark = request_save(Path(os.environ[SESSION_ENV]))
    wait_saved(path, mark, timeout)
    return archive_saved(run, names, result, path)


def archive_saved(run: RunbookParams, names: Mapping[str, Any],
                  result: Mapping[str, Any] | None, path: Path) -> Path:
    """Run the archive steps of ``vmigrate run`` on the saved notebook ``path``."""
    kind, params = run.kind, given_parameters(run.kind, names)
    ws = Workspace(run.migration.workspace)
    start = rb.HAND_RUN_START or {"started": time.time(), "offset": 0}
    folder = prepare_folder(kind, params, None, None, ws)
    shutil.copyfile(path, folder / f"{kind}.ipynb")
    nb = json.loads(path.read_text(encoding="utf-8"))
    kernel = str(nb.get("metadata", {}).get("kernelspec", {}).get("name", "unknown"))
    offset = int(start["offset"])
    notes = archive_outputs(folder, kind, params, path, kernel, ws, offset)
    ended = time.time()
    record: dict[str, Any] = {
        "runbook": kind, "mode": "by hand in JupyterLab", "status": "ok",
        "started": start["started"], "ended": ended,
        "duration_s": round(ended - float(start["started"]), 3), "error": None,
        "result": dict(result) if result is not None else None,
        "change_id": run.change_id, "operator": run.migration.operator, "kernel": kernel,
        "cwd": str(Path.cwd()), "notebook": str(path), "params_file": "",
        "journal_offset": offset, "base_dir": str(project_root(path.parent)), **notes,
    }
    html_error = finish_document(folder, kind, record)
    if html_error:
        record["html_export_error"] = html_error
    _redactions, manifest, signed = seal(folder, record, params)
    journal_archived(ws, kind, "ok", folder, manifest)
    print(f"evidence sealed in {folder} ({signed})", flush=True)
    return folder
