"""The holder of a flock is named from Linux's /proc/locks (proc(5)), as a refusal of a
workspace in use names it.  Real locks taken by a real child process; nothing simulated."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from vmigrate_lib.lockholders import describe, flock_holders, holders_said

HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "ab")
fcntl.flock(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_the_holder_is_named_until_it_lets_go(tmp_path: Path) -> None:
    lock, other = tmp_path / ".lock", tmp_path / "other"
    lock.touch()
    other.touch()
    assert flock_holders(lock) == [] and holders_said(lock) == ""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert flock_holders(lock) == [child.pid]
        assert flock_holders(other) == []  # another file's inode is not matched
        said = holders_said(lock)
        assert said.startswith(f": pid {child.pid} (") and "fcntl" in said, said
        assert len(describe(child.pid, width=40)) <= len(f"pid {child.pid} ()") + 40
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5  # the kernel drops the lock with its holder
    while flock_holders(lock) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flock_holders(lock) == []


def test_no_proc_locks_names_nobody(tmp_path: Path) -> None:
    (tmp_path / ".lock").touch()
    assert flock_holders(tmp_path / ".lock", locks=tmp_path / "absent") == []
    assert flock_holders(tmp_path / "gone") == []
