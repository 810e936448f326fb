"""Execute a runbook with papermill into an evidence folder, sealed by a manifest.

One folder per run holds the executed notebook and what :mod:`.run_archive` adds
(HTML, parameters, journal slice, audit CSV/PNG, versions, commit, manifest,
signature).  Failed runs are archived too; an execution timeout (which papermill
does not mark) and a dead kernel are marked here.

The parameters are checked here, with the runbook's own check, before anything
is archived and before a kernel starts: refused parameters (a pasted secret
among them) leave no folder, no notebook and no kernel history behind.  The
kernel runs with IPython's history database off, the archive is private and sealed
read-only, and a full disk is one line (:class:`LocalDiskFull`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

import papermill as pm
from jupyter_client.kernelspec import KernelSpecManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError

from .. import errors
from ..audit.dashboard import HEADLESS_ENV
from ..engine.workspace import Workspace
from ..errors import InputError, ParameterError, VmigrateError
from ..fsfaults import disk_full
from ..params import LabHostParams
from ..params.paramfile import shown
from ..params.paths import project_root
from .executed import mark_failed, read_result
from .kernel_interrupt import KernelInterrupt
from .kernel_transport import IpcKernelManager
from .run_archive import (
    archive_outputs,
    finish_document,
    journal_archived,
    nbformat_module,
    prepare_folder,
    seal,
)
from .runbook_params import (
    RUNBOOK_PARAMETERS,
    RunbookParams,
    check_parameters,
    check_workspace_use,
)

#: Name of the kernel set-up installs (jupyter/install.sh); python3 is the fallback.
KERNEL_NAME = "vmigrate"
RUNBOOKS_ENV = "VMIGRATE_RUNBOOKS"
#: Kernel arguments: no IPython history database.  nbclient sets ``:memory:`` only for
#: kernels named python/python3 (jupyter_client's ``KernelManager.ipykernel``); the
#: ``vmigrate`` kernel would record every cell, parameters included, in
#: ``$IPYTHONDIR/profile_default/history.sqlite``.
KERNEL_HISTORY_OFF = ("--HistoryManager.enabled=False", "--HistoryManager.hist_file=:memory:")


@dataclass
class RunResult:
    """What happened, where the evidence is, and the CLI exit code that goes with it."""

    kind: str
    status: str  #: ok | failed | timeout
    folder: Path
    exit_code: int
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    redactions: dict[str, int] = field(default_factory=dict)
    #: what the operator should know: "unsigned: ...", "runbook differs from its commit"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        why = f": {self.error.get('message', '')}" if self.error else ""
        return f"{self.kind} runbook {self.status.upper()}{why}"  # the folder: its own line


def runbooks_dir() -> Path:
    """$VMIGRATE_RUNBOOKS, else the runbooks shipped as package data ``vmigrate_lib.runbooks``
    (the checkout's ``runbooks/`` in an editable install, the wheel's copy otherwise)."""
    env = os.environ.get(RUNBOOKS_ENV)
    if env:
        return Path(env)
    return Path(str(files("vmigrate_lib.runbooks")))


def pick_kernel(name: str | None = None) -> str:
    """The named kernel if installed, else ``vmigrate``, else ``python3``."""
    specs = KernelSpecManager().find_kernel_specs()
    if name:
        if name not in specs:
            raise ParameterError(f"no Jupyter kernel named {name!r}",
                                 hint="install it (jupyter/install.sh) or pick one of "
                                 + ", ".join(sorted(specs)), parameter="kernel")
        return name
    for candidate in (KERNEL_NAME, "python3"):
        if candidate in specs:
            return candidate
    raise ParameterError("no Jupyter kernel to run the runbook",
                         hint="run jupyter/install.sh to install the vmigrate kernel")


def history_off_args(kernel: str) -> list[str]:
    """The :data:`KERNEL_HISTORY_OFF` arguments the kernel's spec does not already give
    (a traitlets option given twice kills the kernel at start)."""
    argv = KernelSpecManager().get_kernel_spec(kernel).argv
    given = {a.split("=", 1)[0] for a in argv}
    return [a for a in KERNEL_HISTORY_OFF if a.split("=", 1)[0] not in given]


@contextlib.contextmanager
def _headless_env() -> Iterator[None]:
    old = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = old


def _exit_code_for(ename: str) -> int:
    cls = getattr(errors, ename, None)
    if isinstance(cls, type) and issubclass(cls, VmigrateError):
        return int(cls.exit_code)
    return 2 if ename == "ParameterError" else 1


def injected(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What papermill injects: every parameter the runbook declares, None where not given.

    A run from a params file is the file, never the parameters cell's examples
    (``change_id = "CHG-LAB-0001"`` must not stamp a real change): None tells the
    validation cell "not given", and the schema's default applies.  Unknown names
    pass through, for the validation cell to refuse.
    """
    return {**{k: None for k in sorted(RUNBOOK_PARAMETERS[kind])}, **dict(params)}


def run_runbook(
    kind: str,
    params: Mapping[str, Any],
    *,
    params_file: Path | None = None,
    cwd: Path | None = None,
    out_root: Path | None = None,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
    stream: TextIO | None = None,
    runbook: Path | None = None,
    raise_interrupt: bool = True,
) -> RunResult:
    """Execute the ``kind`` runbook with ``params`` under papermill and archive the run.

    A pipeline (compare papermill's ``execute_notebook``): check the parameters
    (:func:`_validate`) and refuse a finished or another change's workspace, make a new
    private evidence folder (:func:`.run_archive.prepare_folder`), execute
    (:func:`_execute`), archive what the run produced (:func:`.run_archive.archive_outputs`),
    redact, seal and sign it (:func:`.run_archive.seal`) and journal where it went
    (:func:`.run_archive.journal_archived`).

    Parameters
    ----------
    kind
        ``sync`` or ``cutover``: which runbook (``<runbooks_dir()>/<kind>.ipynb``).
    params
        The runbook's parameters: the params file's top-level keys, and ``force`` for a
        cutover.  Checked with the runbook's own check before anything is written or a
        kernel starts; keys not given are injected as None ("not given").
    params_file
        The YAML file ``params`` came from, if any: archived verbatim beside them.
    cwd
        Where the kernel runs; default: here.  Relative paths (``workspace``, ``lab_root``)
        resolve against the project root above the params file (else above ``cwd``;
        :func:`vmigrate_lib.params.paths.project_root`) and are injected absolute, so a
        hand run and this one mean the same folders.
    out_root
        Where run folders go; default ``<workspace>/evidence`` (then made 0700 too; a
        folder the operator names is never tightened, only the run folder in it).
    kernel_name
        A Jupyter kernel; default ``vmigrate``, else ``python3`` (:func:`pick_kernel`).
    cell_timeout
        Seconds one cell may run; a longer one fails the run as ``timeout``.  None: no limit.
    stream
        Where the cells' output is echoed while they run (None: nowhere).
    runbook
        Another notebook to run instead of the shipped one (tests, a site's own copy).
    raise_interrupt
        An interrupt (SIGTERM, Ctrl-C, JupyterLab's stop button in a notebook that calls
        this) raises KeyboardInterrupt once the run is archived, so that the calling cell
        stops and no queued cell (a cutover after an interrupted sync) starts.  The CLI
        says False: it reports the run (exit 130) itself.

    Returns the :class:`RunResult` (status ok | failed | timeout, the folder, the exit
    code): a failing run does not raise.  Raises :class:`ParameterError` /
    :class:`InputError` for refused parameters, an unknown kernel or a missing runbook
    (nothing written, no kernel started), and :class:`LocalDiskFull` or
    :class:`EvidenceError` when no archive can be written.
    """
    cwd = Path(cwd or Path.cwd()).resolve()
    base = (project_root(Path(params_file).resolve().parent, fallback=cwd) if params_file
            else project_root(cwd))
    checked = _validate(kind, params, base)
    check_workspace_use(checked)
    source = Path(runbook) if runbook else runbooks_dir() / f"{kind}.ipynb"
    if not source.exists():
        raise InputError(f"runbook {source} not found", hint=f"set ${RUNBOOKS_ENV}")
    kernel = pick_kernel(kernel_name)
    ws = Workspace(checked.migration.workspace)
    try:
        folder = prepare_folder(kind, params, params_file, out_root, ws)
        offset = ws.journal.path.stat().st_size if ws.journal.path.exists() else 0
        run = _execute(kind, absolute_paths(params, checked), source, folder, kernel,
                       cwd=cwd, cell_timeout=cell_timeout, stream=stream)
        notes = archive_outputs(folder, kind, params, source, kernel, ws, offset)
        record = {
            "runbook": kind, "status": run.status, "started": run.started, "ended": run.ended,
            "duration_s": round(run.ended - run.started, 3), "error": run.error,
            "result": run.result, "change_id": params.get("change_id"),
            "operator": params.get("operator"), "kernel": kernel, "cwd": str(cwd),
            "params_file": str(params_file or ""), "journal_offset": offset,
            "base_dir": str(base), "cell_timeout": cell_timeout, **notes,
        }
        html_error = finish_document(folder, kind, record)
        if html_error:
            record["html_export_error"] = html_error
        redactions, manifest, signed = seal(folder, record, params)
        journal_archived(ws, kind, run.status, folder, manifest)
    except OSError as exc:
        full = disk_full(exc)
        if full is None:
            raise
        raise full from exc
    if run.interrupted and raise_interrupt:
        raise KeyboardInterrupt(f"the {kind} runbook was interrupted; evidence: {folder}")
    said = [signed] + ([f"the {kind} runbook {source} differs from its committed version "
                        "(git.json records it): review or commit the change"]
                       if notes.get("runbook_modified") else [])
    return RunResult(kind, run.status, folder, run.exit_code, run.error, run.result, redactions,
                     said)


def absolute_paths(params: Mapping[str, Any], checked: RunbookParams) -> dict[str, Any]:
    """``params`` with ``workspace`` and lab hosts' ``lab_root`` as the check resolved them
    (absolute), so the kernel's folder cannot change what they mean."""
    out = dict(params)
    out["workspace"] = str(checked.migration.workspace)
    for side in ("source", "destination"):
        hp = getattr(checked.migration, side)
        if isinstance(hp, LabHostParams) and isinstance(out.get(side), Mapping):
            out[side] = {**out[side], "lab_root": hp.lab_root}
    return out


def _validate(kind: str, params: Mapping[str, Any], cwd: Path) -> RunbookParams:
    """The runbook's own parameter check, run here first; unknown names are named bounded
    (a file may hold thousands of keys)."""
    if kind not in RUNBOOK_PARAMETERS:
        raise ParameterError(f"unknown runbook {kind!r}", hint="use sync or cutover")
    unknown = [k for k in params if not isinstance(k, str) or k not in RUNBOOK_PARAMETERS[kind]]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ParameterError(f"unknown parameter {shown(unknown[0])}{more} for the {kind} runbook",
                             hint="known parameters: "
                             + ", ".join(sorted(RUNBOOK_PARAMETERS[kind])),
                             parameter=shown(unknown[0]))
    return check_parameters(kind, injected(kind, params), base_dir=cwd)


@dataclass
class Execution:
    """How papermill's run ended: status ok | failed | timeout, and the error if any."""

    status: str
    started: float
    ended: float
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    interrupted: bool = False  #: by a signal to this process (SIGTERM, Ctrl-C)

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "ok" else int((self.error or {}).get("exit_code", 1))


def _execute(kind: str, params: Mapping[str, Any], source: Path, folder: Path, kernel: str,
             *, cwd: Path, cell_timeout: float | None, stream: TextIO | None) -> Execution:
    """Run papermill into ``folder/<kind>.ipynb``; classify how it ended, and mark the
    notebook failed where papermill does not (timeout, dead kernel, interrupt)."""
    out_nb = folder / f"{kind}.ipynb"
    started = time.time()
    status, error = "ok", None
    interrupt = KernelInterrupt()
    try:
        with _headless_env(), interrupt.installed():
            pm.execute_notebook(
                str(source), str(out_nb), parameters=injected(kind, params), kernel_name=kernel,
                cwd=str(cwd), progress_bar=False, stdout_file=stream, stderr_file=stream,
                request_save_on_cell_execute=True, execution_timeout=cell_timeout,
                extra_arguments=history_off_args(kernel), ipython_hist_file="",
                kernel_manager_class=IpcKernelManager, on_cell_start=interrupt.on_cell_start,
            )
    except PapermillExecutionError as exc:
        status = "failed"
        error = {"error": exc.ename, "message": exc.evalue, "cell": exc.cell_index,
                 "exit_code": _exit_code_for(exc.ename)}
    except CellTimeoutError as exc:
        status = "timeout"
        msg = f"a cell ran longer than {cell_timeout} s" if cell_timeout else str(exc)
        error = {"error": "CellTimeoutError", "message": msg, "exit_code": 1}
        mark_failed(out_nb, source, params, status, msg)
    except DeadKernelError as exc:
        status = "failed"
        error = {"error": "DeadKernelError", "message": f"the kernel died: {exc}",
                 "exit_code": 1}
        mark_failed(out_nb, source, params, status, error["message"])
    except (KeyboardInterrupt, errors.Interrupted):  # the CLI's, or before a cell started
        status = "failed"
        error = {"error": "Interrupted", "message": "the run was interrupted", "exit_code": 130}
        mark_failed(out_nb, source, params, status, error["message"])
    interrupted = interrupt.requested or (error or {}).get("error") == "Interrupted"
    if interrupt.requested and error is not None \
            and not str(error.get("message")).startswith("the run was interrupted"):
        said = f" ({error['error']}: {error['message']})" if error.get("message") else ""
        error.update(error="Interrupted", message=f"the run was interrupted{said}",
                     exit_code=errors.Interrupted.exit_code)
    ended = time.time()
    if not out_nb.exists():  # papermill failed before writing anything
        nbformat = nbformat_module()
        nbformat.write(nbformat.read(source, as_version=4), out_nb)
        mark_failed(out_nb, source, params, status, str((error or {}).get("message")))
    return Execution(status, started, ended, error, read_result(out_nb), interrupted)
