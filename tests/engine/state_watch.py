"""Wait for a workspace's ``state.json`` to reach a condition, cheaply.

The file is replaced atomically at each save (a new inode), so a test polls only
``os.stat`` and parses the JSON when the file changed: a tight loop that parsed it
every 2 ms competed with the process under test for the runner's two cores.
``kill_sync_when`` crashes a real ``vmigrate sync`` at such a state (SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_state(path: Path, pred: Callable[[dict[str, Any]], bool], timeout: float = 60,
               running: Callable[[], bool] = lambda: True, poll: float = 0.01) -> dict[str, Any]:
    """The first saved state for which ``pred`` is true.  Fails when ``timeout`` passes or
    when ``running()`` turns false first (the writer ended without reaching it)."""
    deadline = time.monotonic() + timeout
    seen: tuple[int, int, int] | None = None
    while time.monotonic() < deadline:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_ino, st.st_mtime_ns, st.st_size) != seen:
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
            try:
                state = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                state = None
            if state is not None and pred(state):
                return state
        if not running():
            raise AssertionError(f"the writer of {path} ended before the condition held")
        time.sleep(poll)
    raise AssertionError(f"{path}: condition not reached in {timeout} s")


def kill_sync_when(workdir: Path, params: Path, cycles: int,
                   pred: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
    """Start ``vmigrate -q sync --cycles CYCLES`` in ``workdir`` (workspace ``ws``), SIGKILL
    it at the first saved state ``pred`` accepts and return that state's ``in_progress``:
    a crash at a chosen point of the copy, as a power cut or the OOM killer would."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmigrate_lib.faces.cli", "-q", "sync", "-p", str(params),
         "--cycles", str(cycles)],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        state = wait_state(workdir / "ws" / "state.json", pred, timeout=timeout,
                           running=lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        in_progress: dict[str, Any] = state["in_progress"]
        return in_progress
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
