"""vSphere tasks with a deadline, and vmodl faults turned into vmigrate errors.

Every write vmigrate makes is a task; a task that never ends must not hang a
cutover window, so each wait has a timeout and cancels the task when it expires.
Faults become :mod:`vmigrate_lib.errors` with a sentence that says what to do.
"""

from __future__ import annotations

import time
from typing import Any

from ...errors import (
    AuthenticationError,
    DestinationExists,
    HostApiError,
    InsufficientSpace,
    LicenseRestricted,
    PermissionDenied,
    PowerError,
    SnapshotError,
    TimeoutExpired,
    ToolsUnavailable,
    VmigrateError,
    VmNotFound,
)
from ._vmomi import vim, vmodl

#: What a free ESXi licence answers to API writes.
LICENCE_MESSAGE = "Current license or ESXi version prohibits execution of the requested operation"

_POLL_START = 0.05
_POLL_MAX = 1.0


def fault_message(fault: BaseException) -> str:
    """The host's own sentence for a fault (``msg``, else the fault type)."""
    msg = getattr(fault, "msg", None) or ""
    if not msg:
        for lm in getattr(fault, "faultMessage", None) or []:
            msg = getattr(lm, "message", "") or ""
            if msg:
                break
    return str(msg) or type(fault).__name__


def fault_name(fault: BaseException) -> str:
    """``vim.fault.InvalidPowerState`` style name, for the journal."""
    info = getattr(fault, "_wsdlName", None)
    return str(info) if info else type(fault).__name__


def map_fault(fault: BaseException, what: str, **fields: Any) -> VmigrateError:
    """A vmigrate error for ``fault`` raised while doing ``what`` (``"snapshot of alice"``)."""
    msg = fault_message(fault)
    fields = {"fault": fault_name(fault), **fields}
    text = f"{what} failed: {msg}"
    if isinstance(fault, vim.fault.RestrictedVersion) or LICENCE_MESSAGE.lower() in msg.lower():
        return LicenseRestricted(
            f"{what} was refused by the host's licence (free ESXi does not allow API writes): {msg}",
            **fields,
        )
    if isinstance(fault, (vim.fault.InvalidLogin, vim.fault.NotAuthenticated)):
        return AuthenticationError(f"{what} failed: the host rejected the login ({msg})", **fields)
    if isinstance(fault, vim.fault.NoPermission):
        priv = getattr(fault, "privilegeId", None)
        need = f" (needs privilege {priv})" if priv else ""
        return PermissionDenied(f"{what} failed: permission denied{need}", **fields)
    if isinstance(fault, vim.fault.InvalidPowerState):
        return PowerError(
            f"{what} failed: the VM is {getattr(fault, 'existingState', None) or 'in another power state'}",
            **fields,
        )
    if isinstance(fault, vim.fault.ToolsUnavailable):
        return ToolsUnavailable(
            f"{what} failed: VMware Tools are not running in the guest",
            **fields,
        )
    if isinstance(fault, (vim.fault.ApplicationQuiesceFault, vim.fault.QuiesceDatastoreIOForHAFailed)):
        return SnapshotError(
            f"{what} failed: the guest could not be quiesced ({msg})",
            hint="check VMware Tools and the guest's VSS/freeze scripts, or snapshot without quiesce",
            **fields,
        )
    if isinstance(fault, vim.fault.SnapshotFault):
        return SnapshotError(text, **fields)
    if isinstance(fault, (vim.fault.NoDiskSpace, vim.fault.InsufficientDisks)):
        return InsufficientSpace(
            f"{what} failed: the datastore is full ({msg})",
            hint="free space on the datastore; nothing else was changed",
            **fields,
        )
    if isinstance(fault, (vim.fault.DuplicateName, vim.fault.AlreadyExists)):
        return DestinationExists(f"{what} failed: the name is already taken ({msg})", **fields)
    if isinstance(fault, vmodl.fault.ManagedObjectNotFound):
        return VmNotFound(
            f"{what} failed: the object is gone from the inventory ({msg})",
            hint="it was removed or moved meanwhile; look it up again",
            **fields,
        )
    if isinstance(fault, vim.fault.TaskInProgress):
        return HostApiError(
            f"{what} failed: another task is running on the object",
            hint="wait for the other task to finish (see the host's recent tasks), then re-run",
            **fields,
        )
    if isinstance(fault, vim.fault.Timedout):
        return TimeoutExpired(f"{what} timed out on the host ({msg})", **fields)
    return HostApiError(text, **fields)


def wait_task(task: Any, timeout: float, what: str, **fields: Any) -> Any:
    """Wait for ``task`` (polling ``info.state``); return its result or raise a mapped error.

    On timeout the task is cancelled if it can be, and :class:`TimeoutExpired` raised.
    """
    deadline = time.monotonic() + timeout
    delay = _POLL_START
    while True:
        info = task.info
        state = info.state
        if state == vim.TaskInfo.State.success:
            return info.result
        if state == vim.TaskInfo.State.error:
            fault = info.error
            if fault is None:
                raise HostApiError(f"{what} failed without a reason", **fields)
            raise map_fault(fault, what, task=task._moId, **fields) from fault
        if time.monotonic() >= deadline:
            cancelled = False
            if getattr(info, "cancelable", False):
                try:
                    task.CancelTask()
                    cancelled = True
                except vmodl.MethodFault:
                    pass
            raise TimeoutExpired(
                f"{what} did not finish within {timeout:.0f} s"
                + (" (task cancelled)" if cancelled else " (task still running on the host)"),
                task=task._moId,
                timeout=timeout,
                **fields,
            )
        time.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)


__all__ = ["LICENCE_MESSAGE", "fault_message", "fault_name", "map_fault", "wait_task"]
