"""Running one VM's step as a ``vmigrate`` child process, its output in the VM's log.

Each step is the ordinary CLI (``vmigrate run sync|cutover``, ``vmigrate sync``,
``vmigrate rollback``) on the VM's own params file, so a wave does exactly what an
operator's commands would, in the VM's own workspace with its own evidence.  A child
gets SIGTERM when the wave run dies (Linux ``PR_SET_PDEATHSIG``): a killed wave leaves no
copy running behind the next run's back, and SIGTERM is the CLI's clean interrupt
(snapshot removed, state kept; a runbook passes it on to its kernel and waits for the
running cell's clean-up, faces/kernel_interrupt.py).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lockholders import describe, flock_holders

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the wave's lock still refuses a second run
        pass


@dataclass(frozen=True)
class StepResult:
    code: int
    evidence: str  #: the runbook's evidence folder ("" for a plain command)
    last_line: str  #: the last line it wrote (its error line when it failed)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def run_record(self) -> dict[str, Any]:
        """The runbook's ``run.json`` (its result), {} when there is none."""
        if not self.evidence:
            return {}
        try:
            data = json.loads((Path(self.evidence) / "run.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def wait_workspace_free(workspace: Path, timeout: float = 900.0) -> list[str]:
    """Wait until no process holds the workspace's lock (after a killed wave run, a
    runbook's kernel may still finish its cell); the holders it waited for, named
    (``pid N (command)``), empty if it did not wait."""
    lock = workspace / ".lock"
    if not lock.exists():
        return []
    waited: list[str] = []
    deadline = time.monotonic() + timeout
    with open(lock, "ab") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return waited  # the step itself then says the workspace is in use
                if not waited:
                    waited = [describe(p) for p in flock_holders(lock)] or ["unknown"]
                time.sleep(0.5)
                continue
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return waited


def vmigrate(args: list[str], params_file: Path, log: Path) -> StepResult:
    """``vmigrate -q ARGS -p PARAMS_FILE``; stdout and stderr appended to ``log``."""
    argv = [sys.executable, "-m", "vmigrate_lib.faces.cli", "-q", *args, "-p", str(params_file)]
    with open(log, "ab") as out:
        out.write(f"$ vmigrate {' '.join(args)} -p {params_file}\n".encode())
        out.flush()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              preexec_fn=_die_with_parent, check=False)
        out.write(proc.stdout)
    lines = [ln for ln in proc.stdout.decode(errors="replace").splitlines() if ln.strip()]
    evidence = next((ln.split(":", 1)[1].strip() for ln in reversed(lines)
                     if ln.startswith("evidence: ")), "")
    said = [ln for ln in lines if ln.startswith("vmigrate: error:") or " FAILED" in ln
            or " TIMEOUT" in ln]
    said = said or [ln for ln in lines if not ln.startswith(("evidence: ", "$ "))]
    return StepResult(proc.returncode, evidence, (said or [""])[-1].strip())
