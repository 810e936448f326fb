"""Peers that must not outlive a killed test run (sshd, vcsim): the kernel sends them
SIGTERM when the test process dies (``PR_SET_PDEATHSIG``, prctl(2); it survives exec).
A pytest run killed by a harness never runs its fixtures' teardown, and a machine that
ran many such runs slowed every later one."""

from __future__ import annotations

import contextlib
import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` of a peer's Popen (Linux; elsewhere a no-op)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
