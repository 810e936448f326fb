"""Who holds a file's flock: the process a refusal ("workspace in use") can name.

At 3 a.m. "in use by another vmigrate run" asks the next question at once: which one?
Linux lists every lock in ``/proc/locks`` (proc(5)): ``1: FLOCK  ADVISORY  WRITE 4242
08:01:1234567 0 EOF``, the pid that took it and the file as ``major:minor:inode`` (hex
device numbers).  Lines with ``->`` are waiters, not holders.  Elsewhere the list is empty.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC_LOCKS = Path("/proc/locks")


def flock_holders(path: Path, locks: Path = PROC_LOCKS) -> list[int]:
    """The pids holding a flock on ``path`` (none when it is free, gone, or unknowable)."""
    try:
        st = os.stat(path)
        text = locks.read_text()
    except OSError:
        return []
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[5] == want and f[4].isdigit():
            pids.append(int(f[4]))
    return sorted(set(pids))


def describe(pid: int, width: int = 120) -> str:
    """``pid 4242 (python -m ipykernel_launcher ...)``, or just the pid if it cannot be read."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    cmd = " ".join(a.decode(errors="replace") for a in argv if a)
    cmd = cmd if len(cmd) <= width else cmd[: width - 3] + "..."
    return f"pid {pid} ({cmd})" if cmd else f"pid {pid}"


def holders_said(path: Path) -> str:
    """``": pid 4242 (...)"`` for a refusal's message, "" when no holder can be named."""
    pids = flock_holders(path)
    return (": " + ", ".join(describe(p) for p in pids)) if pids else ""


__all__ = ["describe", "flock_holders", "holders_said"]
