"""One run per workspace: a second ``vmigrate`` on a workspace in use is refused, changes
nothing, and the workspace serves again once the first run lets go.

The first run is played by this test holding ``flock(LOCK_EX)`` on the workspace's
``.lock``, as a running vmigrate holds it (flock(2): the lock is the kernel's, released
when its holder's descriptor closes, also when the holder is killed).  The second is the
real CLI.  Before: the lock was built but never tested (code-review §3).
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

import pytest

from tests.engine.refusals import run_and_check_unchanged

MiB = 1 << 20


@pytest.mark.parametrize("command", [("sync", "--cycles", "1"), ("cutover", "--force")])
def test_a_workspace_in_use_is_refused_then_served(make_lab: Any, command: tuple[str, ...]
                                                   ) -> None:
    lab = make_lab(disk_sizes=(8 * MiB,), power_on=False)
    params = lab.write_params()
    assert lab.cli("sync", "-p", str(params), "--cycles", "1").returncode == 0
    fd = os.open(lab.workdir / "ws" / ".lock", os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = run_and_check_unchanged(lab, command[0], "-p", str(params), *command[1:])
        assert "is in use by another vmigrate run" in line and "wait for it" in line, line
        assert f"pid {os.getpid()} (" in line, line  # the holder named (lockholders.py)
    finally:
        os.close(fd)  # the first run ends
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stdout + r.stderr
