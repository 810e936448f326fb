"""An interrupt of ``vmigrate run`` reaches the work, which runs in the runbook's kernel.

The CLI turns SIGTERM and Ctrl-C into its clean interrupt (snapshot removed, state kept).
Under papermill the copy runs in a kernel, a separate process in its own session, which
neither signal reaches.  Before this, the CLI left papermill at once, and jupyter_client's
shutdown of the kernel interrupted it, asked it to shut down and killed it after
``shutdown_wait_time`` (5 s, ``jupyter_client/manager.py``): a clean-up longer than that
(a snapshot removal on a busy vCenter) was cut short, and the snapshot stayed on the
source until the next run.

While a runbook runs, the first SIGTERM or SIGINT is passed on to the kernel as SIGINT,
which is what JupyterLab's interrupt button sends (jupyter_client ``interrupt_kernel``,
``interrupt_mode: signal``): the running cell gets a KeyboardInterrupt and takes the
engine's clean path, and no further cell starts.  A second signal, or a kernel still busy
after :data:`GRACE` seconds, interrupts the CLI itself, as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from ..errors import Interrupted
from .kernel_transport import live_kernel_groups

#: Seconds a kernel has to end its cell after the interrupt (a cycle's snapshot removal
#: on a busy vCenter takes tens of seconds) before the CLI stops waiting for it.
GRACE = 300


class KernelInterrupt:
    """Signal handling for one runbook run; :meth:`on_cell_start` is nbclient's hook."""

    def __init__(self, grace: int = GRACE) -> None:
        self.grace = grace
        self.requested = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt  # asked twice: stop waiting for the kernel
        self.requested = True
        groups = live_kernel_groups()
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGINT)
        if not groups:
            raise KeyboardInterrupt  # no kernel yet: nothing else to wait for
        signal.alarm(self.grace)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def on_cell_start(self, **_: Any) -> None:
        """No cell starts once an interrupt was asked for (it may have come between two)."""
        if self.requested:
            raise Interrupted("the run was interrupted before its next cell")

    @contextlib.contextmanager
    def installed(self) -> Iterator[KernelInterrupt]:
        """The handlers, while the runbook runs (signals are the main thread's only: from
        another thread the process's handlers stay as they are)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
        old = {s: signal.getsignal(s) for s in sigs}
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)
        try:
            yield self
        finally:
            signal.alarm(0)
            for s, handler in old.items():
                signal.signal(s, handler)


__all__ = ["GRACE", "KernelInterrupt"]
