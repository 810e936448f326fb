"""Retire the source VM at cutover, and restore it on rollback (``cutover.identity:
retire-source``).

Under one vCenter Bob takes Alice's name, so Alice must give it up first, and she
must not come back by accident while she keeps her MAC addresses and BIOS UUID:
she is renamed (``Rename_Task``), her NICs no longer connect at power-on
(``ReconfigVM_Task``, ``connectable.startConnected = False``), a note goes into her
annotation, and her host's autostart forgets her (``ReconfigureAutostart`` with
``startAction`` and ``stopAction`` both ``none``, which "removes it from the
AutoStart sequence", vSphere API reference, AutoStartPowerInfo).  She is kept,
files and all, for a rollback; HCX's migration does the same to its source, and
Veeam's permanent failover leaves the original VM out of its jobs.

Every change is read first into a :class:`RetirePlan` (saved by the engine before
anything changes), found again by ``config.instanceUuid`` (the name changes; the
BIOS UUID is Bob's too), and set to a target value, so both directions are
idempotent: a killed cutover or rollback runs them again.
"""

from __future__ import annotations

from typing import Any

from ...errors import DestinationExists, VmNotFound
from ..host import RetirePlan
from . import checks
from ._vmomi import vim
from .connection import Connection
from .inventory import collect
from .tasks import wait_task

#: (privilege, what needs it) on the source VM; the annotation is a Rename privilege
#: (vSphere API reference, VirtualMachineConfigSpec.annotation)
VM_PRIVILEGES = (("VirtualMachine.Config.Rename", "renaming the source and noting why"),
                 ("VirtualMachine.Config.EditDevice", "its NICs not connected at power-on"))
#: on its host, when it is in the autostart order (HostAutoStartManager.ReconfigureAutostart)
HOST_PRIVILEGES = (("Host.Config.AutoStart", "taking it out of autostart"),)

#: ESXi's AutoStartPowerInfo fields, saved and put back as they were.
AUTOSTART_FIELDS = ("startOrder", "startDelay", "waitForHeartbeat", "startAction",
                    "stopDelay", "stopAction")


def stable_id(instance_uuid: Any, vmx_path: Any) -> str:
    """What finds the VM again whatever its name: ``config.instanceUuid``, or where
    none is set, ``path:`` and its ``.vmx`` (a rename moves no file)."""
    return str(instance_uuid) if instance_uuid else f"path:{vmx_path}"


def by_instance_uuid(conn: Connection, vm_id: str, name: str) -> Any:
    """The VM whose :func:`stable_id` is ``vm_id`` (its name may have changed)."""
    rows = collect(conn, vim.VirtualMachine, ["config.instanceUuid", "config.files.vmPathName"])
    hits = [o for o, v in rows if stable_id(v.get("config.instanceUuid"),
                                           v.get("config.files.vmPathName")) == vm_id]
    if len(hits) != 1:
        raise VmNotFound(f"the source VM {name} (instance UUID {vm_id}) is not on {conn.where}",
                         hint="was it removed from the inventory? register it again, then "
                         "run the command again", vm=name, instance_uuid=vm_id)
    return hits[0]


def nics(vm: Any) -> list[Any]:
    return [d for d in vm.config.hardware.device
            if isinstance(d, vim.vm.device.VirtualEthernetCard)]


def autostart_manager(vm: Any) -> Any | None:
    host = vm.runtime.host
    return host.configManager.autoStartManager if host is not None else None


def autostart_entry(vm: Any) -> dict[str, Any] | None:
    """The VM's entry in its host's autostart order (None: not in it)."""
    mgr = autostart_manager(vm)
    config = mgr.config if mgr is not None else None
    for p in (config.powerInfo if config is not None else None) or []:
        if p.key == vm:
            return {f: getattr(p, f) for f in AUTOSTART_FIELDS}
    return None


def plan(conn: Connection, vm: Any, new_name: str, note: str) -> RetirePlan:
    """What :func:`apply` will change, read without changing anything; the API user's
    privileges for it are checked first (:class:`HostNotPrepared` names the missing)."""
    name = conn.call(lambda: str(vm.name), "reading a VM's name")
    needed = [checks.privileges(conn, vm, VM_PRIVILEGES, f"VM {name}")]
    if conn.call(lambda: autostart_entry(vm), f"reading the autostart of {name}") is not None:
        host = conn.call(lambda: vm.runtime.host, f"reading the host of {name}")
        needed.append(checks.privileges(conn, host, HOST_PRIVILEGES, f"the host of {name}"))
    for c in needed:
        if c.error is not None:
            raise c.error

    def run() -> RetirePlan:
        saved = {
            "nics": [{"key": int(d.key), "label": str(d.deviceInfo.label if d.deviceInfo else d.key),
                      "start_connected": bool(d.connectable and d.connectable.startConnected)}
                     for d in nics(vm)],
            "autostart": autostart_entry(vm),
            "annotation": str(vm.config.annotation or ""),
            "note": note,
        }
        return RetirePlan(name=str(vm.name), new_name=new_name, saved=saved,
                          vm_id=stable_id(vm.config.instanceUuid, vm.config.files.vmPathName))

    return conn.call(run, f"reading VM {vm.name} before retiring it")


def _nic_edits(vm: Any, wanted: dict[int, bool]) -> list[Any]:
    """Edit specs setting each NIC's start-connected flag to ``wanted[key]``."""
    edits = []
    for d in nics(vm):
        want = wanted.get(int(d.key))
        have = bool(d.connectable and d.connectable.startConnected)
        if want is None or want == have:
            continue
        d.connectable = d.connectable or vim.vm.device.VirtualDevice.ConnectInfo()
        d.connectable.startConnected = want
        edits.append(vim.vm.device.VirtualDeviceSpec(
            operation=vim.vm.device.VirtualDeviceSpec.Operation.edit, device=d))
    return edits


def _reconfigure(conn: Connection, vm: Any, wanted: dict[int, bool], annotation: str,
                 timeout: float, what: str) -> None:
    def spec() -> Any | None:
        edits = _nic_edits(vm, wanted)
        same_note = str(vm.config.annotation or "") == annotation
        if not edits and same_note:
            return None
        return vim.vm.ConfigSpec(deviceChange=edits, annotation=None if same_note else annotation)

    s = conn.call(spec, what)
    if s is not None:
        task = conn.call(lambda: vm.ReconfigVM_Task(spec=s), what)
        conn.call(lambda: wait_task(task, timeout, what), what)


def _rename(conn: Connection, vm: Any, name: str, timeout: float) -> None:
    if conn.call(lambda: str(vm.name), "reading a VM's name") == name:
        return
    what = f"renaming VM {vm.name} to {name}"
    taken = [o for o, v in collect(conn, vim.VirtualMachine, ["name"]) if v.get("name") == name]
    if taken:
        raise DestinationExists(f"cannot rename VM {vm.name} to {name}: a VM of that name is "
                                f"registered on {conn.where}", vm=name,
                                hint=f"rename or remove the other VM named {name}, then run "
                                "the command again")
    task = conn.call(lambda: vm.Rename_Task(newName=name), what)
    conn.call(lambda: wait_task(task, timeout, what, vm=name), what)


def _set_autostart(conn: Connection, vm: Any, entry: dict[str, Any] | None) -> None:
    """Put ``entry`` in the VM's host's autostart order (None: take the VM out)."""
    mgr = conn.call(lambda: autostart_manager(vm), "finding the host's autostart manager")
    if mgr is None or conn.call(lambda: autostart_entry(vm), "reading autostart") == entry:
        return
    values = entry or {"startOrder": -1, "startDelay": -1, "waitForHeartbeat": "systemDefault",
                       "startAction": "none", "stopDelay": -1, "stopAction": "none"}
    info = vim.host.AutoStartManager.AutoPowerInfo(key=vm, **values)
    spec = vim.host.AutoStartManager.Config(powerInfo=[info])
    conn.call(lambda: mgr.ReconfigureAutostart(spec=spec), f"changing the autostart of {vm.name}")


def apply(conn: Connection, p: RetirePlan, timeout: float) -> None:
    """Rename, NICs not connected at power-on, the note, out of autostart."""
    vm = by_instance_uuid(conn, p.vm_id, p.name)
    _rename(conn, vm, p.new_name, timeout)
    note = str(p.saved.get("note") or "")
    before = str(p.saved.get("annotation") or "")
    annotation = f"{before}\n{note}".strip() if note and note not in before else before
    _reconfigure(conn, vm, {int(n["key"]): False for n in p.saved.get("nics") or []},
                 annotation, timeout, f"disconnecting the NICs of VM {p.new_name} at power-on")
    _set_autostart(conn, vm, None)


def restore(conn: Connection, p: RetirePlan, timeout: float) -> None:
    """Everything :func:`apply` changed, back as the plan found it; the name last (Bob,
    who took it, must be gone by then)."""
    vm = by_instance_uuid(conn, p.vm_id, p.name)
    _reconfigure(conn, vm, {int(n["key"]): bool(n["start_connected"])
                            for n in p.saved.get("nics") or []},
                 str(p.saved.get("annotation") or ""), timeout,
                 f"restoring the NICs of VM {p.name}")
    entry = p.saved.get("autostart")
    if entry is not None:
        _set_autostart(conn, vm, dict(entry))
    _rename(conn, vm, p.name, timeout)


__all__ = ["AUTOSTART_FIELDS", "HOST_PRIVILEGES", "VM_PRIVILEGES", "apply", "autostart_entry",
           "by_instance_uuid", "plan", "restore", "stable_id"]
