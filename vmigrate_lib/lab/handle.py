"""Operations on one lab VM, routed to its guest when it runs, to its files when off.

A running guest owns its disk files (it may be writing any of them), so state
changes go through its control socket; when the VM is off, the same
:class:`~.machine.VmMachine` code runs here.  Either way the VM's file lock
serializes control processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import LabError, PowerError, TimeoutExpired
from .guestctl import GuestUnreachable, call
from .inventory import VmLocation
from .layout import file_lock
from .machine import VmMachine
from .power import LOG_FILE, guest_pid, powered_off
from .vmconfig import VmConfig

T = TypeVar("T")


def log_tail(vmdir: Path, lines: int = 8) -> str:
    try:
        return "\n".join((vmdir / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class VmHandle:
    def __init__(self, loc: VmLocation) -> None:
        self.loc = loc
        self.vmdir = loc.vmdir
        self.name = loc.name

    def config(self) -> VmConfig:
        return VmConfig.load(self.loc.config_path)

    @contextmanager
    def locked(self, timeout: float = 120.0) -> Iterator[None]:
        with file_lock(self.vmdir / ".lock", timeout, what=f"VM {self.name}"):
            yield

    def pid(self) -> int | None:
        return guest_pid(self.vmdir)

    def guest(self, cmd: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        """Call the running guest, waiting out its first moments (socket not bound yet)."""
        deadline = time.monotonic() + min(timeout, 10.0)
        while True:
            try:
                return call(self.vmdir, cmd, timeout, **args)
            except GuestUnreachable:
                if self.pid() is None:
                    raise PowerError(
                        f"VM {self.name} is powered off", vm=self.name, log=log_tail(self.vmdir)
                    ) from None
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def status(self) -> dict[str, Any] | None:
        """The guest's status, or None when the VM is off or not answering."""
        if self.pid() is None:
            return None
        try:
            return call(self.vmdir, "status", 5.0)
        except LabError:
            return None

    def run(
        self,
        cmd: str,
        offline: Callable[[VmMachine], T],
        online: Callable[[dict[str, Any]], T],
        timeout: float = 120.0,
        **args: Any,
    ) -> T:
        """Do one state change: through the guest if it runs, else on the files."""
        with self.locked(timeout):
            if self.pid() is not None:
                return online(self.guest(cmd, timeout, **args))
            with powered_off(self.vmdir) as off:  # no guest starts while we edit its files
                if off:
                    machine = VmMachine.open(self.loc.config_path)
                    try:
                        return offline(machine)
                    finally:
                        machine.close()
            return online(self.guest(cmd, timeout, **args))  # a guest came up meanwhile

    def wait_state(
        self, want: Callable[[dict[str, Any] | None], bool], timeout: float, what: str
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if want(st):
                return st
            if time.monotonic() >= deadline:
                raise TimeoutExpired(
                    f"VM {self.name}: {what} not reached within {timeout:.0f}s",
                    vm=self.name,
                    timeout=timeout,
                    log=log_tail(self.vmdir),
                )
            time.sleep(0.05)
