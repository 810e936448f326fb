"""Is the host's licence one that refuses API writes?  Found at preflight, not at cycle 1.

The free ESXi licence ("vSphere Hypervisor") answers every API write with
``RestrictedVersion`` ("Current license or ESXi version prohibits execution of the
requested operation"): snapshots, power, ``ReconfigVM_Task``, ``RegisterVM_Task``
(pyvmomi#625, ansible#21121, os-autoinst#875, migratekit#7).  Reads work, so only a
write tells.  The probe is the one write that changes nothing: ``ReconfigVM_Task``
with an empty ``ConfigSpec`` on the VM to be moved.  A licensed host accepts it (it
records a reconfigure task and event; no setting changes); a free one refuses it
before anything is done.  Refused, preflight names the ``esxi`` host type, which
drives the host with vim-cmd over SSH whatever the licence.
"""

from __future__ import annotations

from typing import Any

from ...errors import LicenseRestricted, PermissionDenied
from ..host import HostCheck
from ._vmomi import vim
from .connection import Connection
from .tasks import wait_task

ESXI_HINT = ("set this side's type to esxi (vim-cmd over SSH, which works whatever the "
             "licence: see examples/esxi.yaml), or apply a vSphere licence to the host")


def licence_check(conn: Connection, ref: Any, vm: str, timeout: float = 120.0) -> HostCheck:
    """``licence``: whether the host accepts API writes (an empty reconfigure of ``vm``)."""
    what = f"the licence probe (an empty reconfigure of {vm})"
    try:
        task = conn.call(lambda: ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec()), what)
        wait_task(task, timeout, what)
    except LicenseRestricted as exc:
        return HostCheck("licence", False, "refuses API writes (free ESXi licence)",
                         LicenseRestricted(exc.message, hint=ESXI_HINT,
                                           **{**exc.fields, "vm": vm, "host": conn.where}))
    except PermissionDenied:
        return HostCheck("licence", True, "not probed: the API user may not reconfigure "
                         f"{vm}; a licence refusal would show at the first snapshot")
    return HostCheck("licence", True, "API writes allowed (an empty reconfigure was accepted)")


__all__ = ["ESXI_HINT", "licence_check"]
