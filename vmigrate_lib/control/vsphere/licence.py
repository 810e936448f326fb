"""Is the host's licence one that refuses API writes?  Found at preflight, not at cycle 1.

The free ESXi licence ("vSphere Hypervisor") answers every API write with
``RestrictedVersion`` ("Current license or ESXi version prohibits execution of the
requested operation"): snapshots, power, ``ReconfigVM_Task``, ``RegisterVM_Task``
(pyvmomi#625, ansible#21121, os-autoinst#875, migratekit#7).  Reads work, so the
check reads the licence, as VMware's own scripts do: edition key ``esxBasic`` is the
free one ("the free version will not allow you to perform any write operations",
lamw/vmware-scripts ``perl/checkESXiVersion.pl``), and an evaluation whose
``expirationHours`` reached 0 has ended.  Standalone, the host's ``LicenseManager``
lists its licence; under vCenter, ``LicenseAssignmentManager.QueryAssignedLicenses``
names the one assigned to the VM's host.  Preflight changes nothing: only where
no licence can be read is the one write that changes no setting tried (an empty
``ReconfigVM_Task`` on the VM, which a licensed host records as a task and event).
Refused, preflight names the ``esxi`` host type, which drives the host with
vim-cmd over SSH whatever the licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import LicenseRestricted, PermissionDenied
from ..host import HostCheck
from ._vmomi import vim, vmodl
from .connection import Connection
from .tasks import wait_task

ESXI_HINT = ("set this side's type to esxi (vim-cmd over SSH, which works whatever the "
             "licence: see examples/esxi.yaml), or apply a vSphere licence to the host")
#: Edition keys of licences that refuse API writes (see the module docstring).
FREE_EDITIONS = frozenset({"esxBasic"})
#: The message a refusing host gives (pyvmomi#625), used when the refusal is read, not met.
REFUSAL = "Current license or ESXi version prohibits execution of the requested operation."


@dataclass(frozen=True)
class LicenceInfo:
    edition: str
    name: str
    expired: bool

    @property
    def refuses_writes(self) -> bool:
        return self.edition in FREE_EDITIONS or self.expired


def _expired(info: Any) -> bool:
    for prop in info.properties or []:
        if prop.key == "expirationHours":
            try:
                return int(prop.value) <= 0
            except (TypeError, ValueError):
                return False
    return False


def read_licence(conn: Connection, ref: Any) -> LicenceInfo | None:
    """The licence of the host ``ref`` (a VM) runs on, or of ``ref`` itself (a
    HostSystem: the destination); None where none can be read."""
    def run() -> Any:
        content = conn.content
        try:
            if content.about.apiType == "VirtualCenter":
                am = content.licenseManager.licenseAssignmentManager
                host = ref if isinstance(ref, vim.HostSystem) else ref.runtime.host
                if am is None or host is None:
                    return None
                got = am.QueryAssignedLicenses(entityId=host._moId)
                return got[0].assignedLicense if got else None
            found = list(content.licenseManager.licenses or [])
            return found[0] if found else None
        except (vmodl.fault.NotImplemented, vim.fault.NoPermission, vmodl.fault.ManagedObjectNotFound):
            return None

    info = conn.call(run, "reading the host's licence")
    if info is None:
        return None
    return LicenceInfo(str(info.editionKey or ""), str(info.name or ""), _expired(info))


def licence_check(conn: Connection, ref: Any, vm: str, timeout: float = 120.0) -> HostCheck:
    """``licence``: whether the host accepts API writes (read; probed only if unreadable)."""
    lic = read_licence(conn, ref)
    if lic is None and isinstance(ref, vim.HostSystem):  # a destination: no VM to probe
        return HostCheck("licence", True, "not readable; a refusal would show at registration")
    if lic is None:
        return _probe(conn, ref, vm, timeout)
    label = f"{lic.name or lic.edition} (edition {lic.edition or 'unknown'})"
    if lic.refuses_writes:
        why = "its evaluation has ended" if lic.expired else "a free licence"
        return HostCheck("licence", False, f"{label}: refuses API writes ({why})",
                         LicenseRestricted(f"{conn.where}: licence {label} refuses API writes "
                                           f"({why}): {REFUSAL}", hint=ESXI_HINT, vm=vm,
                                           host=conn.where, edition=lic.edition))
    return HostCheck("licence", True, f"{label}: API writes allowed (read, nothing written)")


def _probe(conn: Connection, ref: Any, vm: str, timeout: float) -> HostCheck:
    what = f"the licence probe (an empty reconfigure of {vm})"
    try:
        task = conn.call(lambda: ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec()), what)
        wait_task(task, timeout, what)
    except LicenseRestricted as exc:
        return HostCheck("licence", False, "refuses API writes (free ESXi licence)",
                         LicenseRestricted(exc.message, hint=ESXI_HINT,
                                           **{**exc.fields, "vm": vm, "host": conn.where}))
    except PermissionDenied:
        return HostCheck("licence", True, "not readable and not probed: the API user may not "
                         f"reconfigure {vm}; a licence refusal would show at the first snapshot")
    return HostCheck("licence", True, "licence not readable; API writes allowed (an empty "
                     "reconfigure was accepted)")


__all__ = ["ESXI_HINT", "FREE_EDITIONS", "LicenceInfo", "licence_check", "read_licence"]
