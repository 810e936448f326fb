"""Wait for a workspace's ``state.json`` to reach a condition, cheaply.

The file is replaced atomically at each save (a new inode), so a test polls only
``os.stat`` and parses the JSON when the file changed: a tight loop that parsed it
every 2 ms competed with the process under test for the runner's two cores."""

from __future__ import annotations

import json
import os
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
