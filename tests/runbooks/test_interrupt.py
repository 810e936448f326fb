"""SIGTERM to ``vmigrate run`` lets the runbook's running cell end on its clean path.

The copy runs in the runbook's kernel, a process in a session of its own that a signal to
the CLI does not reach.  Before, the CLI left papermill at once, and jupyter_client's
shutdown interrupted the kernel, asked it to shut down and killed it after
``shutdown_wait_time`` (5 s, ``jupyter_client/manager.py``): a clean-up longer than that
(a snapshot removal on a busy vCenter takes tens of seconds) was cut short.  Now the
interrupt is passed on to the kernel as JupyterLab's interrupt button sends it (SIGINT,
``interrupt_mode: signal``) and the CLI waits for the cell to end (faces/kernel_interrupt.py).

What this proves, with a real kernel under papermill through the real CLI: a cell whose
clean-up takes 8 s completes it, the run is archived as interrupted (exit 130), and no
later cell runs.  The runbook is a stand-in (``VMIGRATE_RUNBOOKS``) whose cell sleeps
instead of copying; a real host's snapshot removal is what only ESXi would time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmigrate_lib.faces.papermill_runner import RUNBOOKS_ENV

SLOW_CLEANUP = '''
import os, pathlib, time
mark = pathlib.Path(os.environ["VMIGRATE_TEST_MARK"])
mark.with_suffix(".started").write_text("1")
try:
    time.sleep(300)
except KeyboardInterrupt:
    time.sleep(8)  # longer than jupyter_client's 5 s shutdown wait
    mark.write_text("clean-up done")
    raise
'''


def _runbook(folder: Path) -> None:
    sources = ["vm = None", SLOW_CLEANUP,
               "import os, pathlib\n"
               "pathlib.Path(os.environ['VMIGRATE_TEST_MARK'] + '.later').touch()"]
    cells: list[dict[str, Any]] = [{"id": f"c{i}", "cell_type": "code", "outputs": [], "execution_count": None,
              "metadata": {"tags": ["parameters"]} if i == 0 else {}, "source": src}
             for i, src in enumerate(sources)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                      "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    folder.mkdir()
    (folder / "sync.ipynb").write_text(json.dumps(nb))


def _interrupted(argv: list[str], tmp_path: Path, cwd: Path, sig: int) -> tuple[int, str]:
    """Run ``argv`` with the stand-in runbook; once its slow cell runs, send ``sig``; its
    exit code and output."""
    _runbook(tmp_path / "runbooks")
    mark = tmp_path / "mark"
    env = {**os.environ, RUNBOOKS_ENV: str(tmp_path / "runbooks"),
           "VMIGRATE_TEST_MARK": str(mark)}
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not mark.with_suffix(".started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.1)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


@pytest.mark.timeout(300)
def test_sigterm_lets_the_running_cell_clean_up(tmp_path: Path, lab: Path,
                                                params: dict[str, Any]) -> None:
    (lab / "params.yaml").write_text(yaml.safe_dump(params))
    code, out = _interrupted([sys.executable, "-m", "vmigrate_lib.faces.cli", "run", "sync",
                              "-p", str(lab / "params.yaml")], tmp_path, lab, signal.SIGTERM)
    mark = tmp_path / "mark"
    assert code == 130, out
    assert mark.exists() and mark.read_text() == "clean-up done", out  # not cut short
    assert not mark.with_suffix(".later").exists()  # no cell after the interrupt
    assert "sync runbook FAILED: the run was interrupted" in out, out


CALLER = """
import json, sys
from pathlib import Path
from vmigrate_lib.faces.papermill_runner import run_runbook
params = json.loads(Path(sys.argv[1]).read_text())
try:
    run_runbook("sync", params)
except KeyboardInterrupt as exc:
    print("RAISED:", exc, flush=True)
else:
    print("RETURNED", flush=True)  # a notebook's next cell (the cutover) would start now
"""


@pytest.mark.timeout(300)
def test_a_notebook_calling_a_runbook_stops_at_the_interrupt(
        tmp_path: Path, lab: Path, params: dict[str, Any]) -> None:
    """``run_runbook`` called from code, as the rehearsal walkthrough's cells call it:
    Ctrl-C (JupyterLab's stop button sends SIGINT the same way) raises KeyboardInterrupt
    once the run is archived.  Before, the call returned a failed result, and a notebook
    run with "Run All" went on to its next cell: the cutover."""
    (tmp_path / "params.json").write_text(json.dumps(params))
    _, out = _interrupted([sys.executable, "-c", CALLER, str(tmp_path / "params.json")],
                          tmp_path, lab, signal.SIGINT)
    mark = tmp_path / "mark"
    assert "RAISED: the sync runbook was interrupted; evidence: " in out, out
    assert mark.exists() and not mark.with_suffix(".later").exists(), out
