"""Wider pipes between an agent and its ssh: fewer wake-ups per byte where CPU is scarce.

A stream crosses two pipes on each host (the agent and ssh or sshd).  Linux pipes hold
64 KiB: a 16 MiB frame wakes the reader and the writer 256 times each, and at 1 Gbit/s on
a host whose cores are all busy (the bench's 2 cores run both agents, ssh and sshd) every
wake-up queues behind the others (bench/README.md, 2026-12-02, third session: the agents,
ssh and sshd each waited on the run queue for about as long as they ran).  ``fcntl(2)``'s
F_SETPIPE_SZ (Linux 2.6.35) raises a pipe's capacity up to /proc/sys/fs/pipe-max-size
(1 MiB by default) for any user.  Per pipe(7), an unprivileged user (neither
CAP_SYS_RESOURCE nor CAP_SYS_ADMIN) spends 256 pages of /proc/sys/fs/pipe-user-pages-soft
(16384 by default) on each widened pipe; at that limit a widening is refused and the
user's new pipes get one page.  An agent widens 2 pipes (4 with a direct push's peer):
16-32 agents of one unprivileged login at once would reach it; on ESXi agents run as
root, to whom the limit does not apply.  Elsewhere (ESXi's userworlds, other systems) the pipe
stays as it is.  Python 3.5, stdlib only (fcntl names F_SETPIPE_SZ from 3.10 only).
"""

import os
import stat
import sys

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

F_SETPIPE_SZ = 1031  #: linux/fcntl.h: F_LINUX_SPECIFIC_BASE (1024) + 7
PIPE_BYTES = 1 << 20


def widen(fd, size=PIPE_BYTES):
    # type: (int, int) -> typing.Optional[int]
    """Raise the capacity of ``fd``'s pipe to ``size`` where the system allows; returns
    the capacity set, or None (not a pipe, not Linux, refused)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
        import fcntl

        return fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except (OSError, ValueError, ImportError):
        return None  # above pipe-max-size, or the user's pipe quota spent: as it was
