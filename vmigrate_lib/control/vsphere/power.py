"""Power: on, hard off, graceful guest shutdown with a deadline, readiness.

Each is idempotent (powering on a running VM is done, not an error), because a
cutover re-run after a crash repeats the step it was in.
"""

from __future__ import annotations

import time
from typing import Any

from ...errors import PowerError, TimeoutExpired
from ..host import PowerState
from . import questions
from ._vmomi import vim
from .connection import Connection
from .tasks import wait_task

_POLL = 0.5
#: seconds a NIC may take to show connected after the power-on task ended (a guess)
NIC_GRACE = 5.0


def state(conn: Connection, vm: Any) -> PowerState:
    return PowerState(conn.call(lambda: str(vm.runtime.powerState), f"reading VM {vm.name}"))


def power_on(conn: Connection, vm: Any, timeout: float, notes: list[str] | None = None,
             check_nics: bool = False) -> None:
    """Power on, answering or reporting a question the VM asks meanwhile
    (:func:`.questions.wait_power_on`; what was answered goes to ``notes``); with
    ``check_nics``, then require every NIC set to connect at power-on to be connected."""
    if state(conn, vm) == PowerState.ON:
        return
    what = f"powering on VM {vm.name}"
    task = conn.call(lambda: vm.PowerOnVM_Task(), what)
    questions.wait_power_on(conn, vm, task, timeout, what, notes if notes is not None else [])
    if check_nics:
        deadline = time.monotonic() + NIC_GRACE
        while questions.disconnected_nics(conn, vm) and time.monotonic() < deadline:
            time.sleep(_POLL)
        questions.check_nics(conn, vm)


def power_off(conn: Connection, vm: Any, timeout: float) -> None:
    if state(conn, vm) == PowerState.OFF:
        return
    what = f"powering off VM {vm.name}"
    task = conn.call(lambda: vm.PowerOffVM_Task(), what)
    conn.call(lambda: wait_task(task, timeout, what, vm=vm.name), what)


def shutdown_guest(conn: Connection, vm: Any) -> None:
    """Ask the guest (through VMware Tools) to shut down; returns at once."""
    if state(conn, vm) == PowerState.OFF:
        return
    conn.call(lambda: vm.ShutdownGuest(), f"guest shutdown of VM {vm.name}", vm=vm.name)


def wait_off(conn: Connection, vm: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while state(conn, vm) != PowerState.OFF:
        if time.monotonic() >= deadline:
            raise TimeoutExpired(
                f"VM {vm.name} did not power off within {timeout:.0f} s after the guest shutdown",
                hint="check the guest console, or use a hard power-off",
                vm=vm.name,
                timeout=timeout,
            )
        time.sleep(_POLL)


def guest_ready(conn: Connection, vm: Any) -> tuple[bool, dict[str, Any]]:
    """Tools running, an IP, a green heartbeat: (ready, what was seen)."""

    def run() -> dict[str, Any]:
        guest = vm.guest
        return {
            "power": str(vm.runtime.powerState),
            "tools": str(guest.toolsRunningStatus) if guest is not None else None,
            "ip": str(guest.ipAddress) if guest is not None and guest.ipAddress else None,
            "heartbeat": str(vm.guestHeartbeatStatus) if vm.guestHeartbeatStatus else None,
        }

    seen = conn.call(run, f"reading the guest state of VM {vm.name}")
    ok = (
        seen["power"] == PowerState.ON
        and seen["tools"] == "guestToolsRunning"
        and bool(seen["ip"])
        and seen["heartbeat"] == vim.ManagedEntity.Status.green
    )
    return ok, seen


def wait_ready(conn: Connection, vm: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ok, seen = guest_ready(conn, vm)
        if ok:
            return seen
        if seen["power"] != PowerState.ON:
            raise PowerError(f"VM {vm.name} is {seen['power']}, it cannot become ready", vm=vm.name)
        if time.monotonic() >= deadline:
            missing = [
                k
                for k, good in (
                    ("VMware Tools running", seen["tools"] == "guestToolsRunning"),
                    ("an IP address", bool(seen["ip"])),
                    ("a green heartbeat", seen["heartbeat"] == "green"),
                )
                if not good
            ]
            raise TimeoutExpired(
                f"VM {vm.name} was not ready within {timeout:.0f} s: no {', no '.join(missing)}",
                hint="check the guest console (boot, network, VMware Tools)",
                vm=vm.name,
                seen=seen,
            )
        time.sleep(_POLL)


__all__ = [
    "guest_ready",
    "power_off",
    "power_on",
    "shutdown_guest",
    "state",
    "wait_off",
    "wait_ready",
]
