"""This kernel's runbook run: when it began, its dashboard and parameters, and what a
failing cell does.

The runbook's first cell calls :func:`baseline` (a new run begins), the dashboard cell
records the run (:mod:`.notebook`), and IPython's custom exception handler
(:func:`show_errors_in_one_line`, installed when the runbooks import :mod:`.notebook`)
shows a vmigrate error as its one line, marks the dashboard FAILED and has a hand run
archived marked failed (:data:`ON_FAILED`: :func:`.hand_run.archive_failed`), since Run All stops at the
failing cell and the last cell, which archives, never runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from IPython import get_ipython

from ..audit.dashboard import Dashboard
from ..errors import VmigrateError
from .runbook_params import RunbookParams
from .runbook_params import baseline as params_baseline

#: When this kernel's run began and the journal's size then: a hand run's archive
#: (:mod:`.hand_run`) keeps the journal slice from there.
HAND_RUN_START: dict[str, float] = {}
#: The dashboard of the run in this kernel, which a failing cell marks failed.
LIVE_DASHBOARDS: list[Dashboard] = []
#: This kernel's run once its parameters passed (its dashboard made): a failing cell
#: archives it marked failed.  Empty before, and again at each new run.
RUNS: list[RunbookParams] = []
#: What else a new run does, and what a failing cell does with a run past its parameters:
#: the hand-run archive (:mod:`.hand_run`) adds itself when imported, so that this module
#: never imports it back (it imports the archive, which imports the notebook face).
ON_BEGIN: list[Callable[[], None]] = []
ON_FAILED: list[Callable[[RunbookParams, Mapping[str, Any], BaseException], object]] = []


def baseline(namespace: Mapping[str, Any]) -> frozenset[str]:
    """The first cell: a new run begins (see :func:`.runbook_params.baseline`)."""
    RUNS.clear()
    HAND_RUN_START.clear()
    for begin in ON_BEGIN:
        begin()
    return params_baseline(namespace)


def _on_error(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
              tb_offset: int | None = None) -> list[str]:
    """IPython's custom exception handler for a runbook cell: a vmigrate error shows as its
    line (what is wrong and how to fix it) instead of 40-60 lines of library frames, other
    errors keep their traceback (bugs: the frames say where); the dashboard says FAILED; a
    hand run past its parameters is archived marked failed.  The kernel still reports an
    error (name and message), so papermill and the runner classify it as before."""
    line = f"{etype.__name__}: {value.one_line() if isinstance(value, VmigrateError) else value}"
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)  # VmigrateError: its line
    for dash in LIVE_DASHBOARDS:
        dash.failed(line)
    if RUNS:
        for archive_failed in ON_FAILED:
            archive_failed(RUNS[-1], shell.user_ns, value)
    return [line]


def show_errors_in_one_line() -> None:
    """In a kernel, handle a cell's error with :func:`_on_error` (every ``Exception``:
    KeyboardInterrupt, an interrupt, stays IPython's)."""
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((Exception,), _on_error)
