"""Who is who when one inventory holds both copies (``cutover.identity``).

One vCenter often manages both hosts.  Bob's default name is Alice's, and a
vCenter lookup by name then finds Alice, so the operator chooses, and preflight
says which choice is needed before anything changes:

* ``new-name``: Bob gets ``dest_name``, which must be free in the destination's
  inventory (the whole vCenter: vmigrate finds VMs by name there, and two VMs of
  one name make every later lookup ambiguous); Alice stays as she is.
* ``retire-source``: at cutover Alice (already off) is renamed
  ``<vm>-retired-<change_id>``, her NICs no longer connect at power-on and her
  host's autostart forgets her (:meth:`Host.retire_vm`), so Bob can take her
  name; a rollback puts all of it back (:meth:`Host.restore_vm`).

In both, Bob keeps Alice's MAC addresses (the guest's network configuration is
bound to them); the destination host makes them stick and checks them after
registration (vSphere: ``control/vsphere/macs.py``).
"""

from __future__ import annotations

import re

from ..control.host import HostCheck, VmInfo
from ..errors import IdentityConflict, PreflightError, VmigrateError
from .context import Migration

#: vSphere's limit on a VM name
MAX_NAME = 80


def retired_name(m: Migration) -> str:
    """``alice-retired-CHG-12345``: the source's name while it is retired."""
    tag = re.sub(r"[^A-Za-z0-9._-]", "-", m.params.change_id) or "vmigrate"
    return f"{m.params.vm}-retired-{tag}"[:MAX_NAME]


def retire_note(m: Migration) -> str:
    """The line added to the retired source's annotation."""
    p = m.params
    change = f" (change {p.change_id})" if p.change_id else ""
    return (f"vmigrate: retired at the cutover of {p.vm}{change}; its copy runs as "
            f"{p.target_name} on {p.destination.host}. Do not power on: vmigrate rollback "
            "puts it back.")


def alice_at_dest(m: Migration) -> VmInfo | None:
    """Alice herself, when the destination's inventory shows her under Bob's name
    (one vCenter for both hosts and no ``dest_name``); None otherwise."""
    p = m.params
    if p.target_name != p.vm or not m.dest.vm_exists(p.vm):
        return None
    try:
        there, here = m.dest.find_vm(p.vm), m.vm()
    except VmigrateError:
        return None  # ambiguous or gone: not provably Alice, the name check says so
    same = (there.uuid, there.datastore, there.folder) == (here.uuid, here.datastore, here.folder)
    return there if same else None


def name_goes_at_cutover(m: Migration) -> bool:
    """Bob's name is Alice's and the cutover frees it (retire-source, one inventory)."""
    return m.params.cutover.identity == "retire-source" and alice_at_dest(m) is not None


def registered_where(m: Migration, name: str) -> str:
    """Where the destination's inventory has a VM called ``name``: "on host X" (the host
    it runs on, which under one vCenter need not be the destination host)."""
    try:
        return f"on host {m.dest.find_vm(name).host}"
    except VmigrateError:
        return f"in the inventory of {_where(m)}"


def _where(m: Migration) -> str:
    d = m.params.destination
    return getattr(d, "url", "") or d.host


def identity_checks(m: Migration, vm: VmInfo) -> list[HostCheck]:
    """Preflight's identity line: the policy, and whether it can work here."""
    if m.params.cutover.identity == "retire-source":
        return [_retire_check(m, vm)]
    return [_new_name_check(m, vm)]


def _new_name_check(m: Migration, vm: VmInfo) -> HostCheck:
    p, shared = m.params, alice_at_dest(m) is not None
    if shared:
        return HostCheck(
            "identity", False,
            f"new-name, but {p.target_name} is the source's own name in one inventory",
            IdentityConflict(
                f"the copy would be registered as {p.target_name}, the name VM {vm.name} "
                f"(on host {vm.host}) keeps in the same inventory ({_where(m)})",
                vm=p.target_name, host=vm.host, inventory=_where(m)))
    macs = f"; it gets {vm.name}'s MAC address(es), made static" if vm.macs else ""
    return HostCheck("identity", True,
                     f"new-name: the copy is registered as {p.target_name}{macs}; "
                     f"{vm.name} keeps her name and stays registered, powered off after "
                     f"the cutover (never power both on){_autostart_warning(m, vm)}")


def _autostart_warning(m: Migration, vm: VmInfo) -> str:
    """What a source host's restart would do to Alice left as she is: power her on beside
    Bob, with his MAC addresses, when she is in its autostart list
    (:meth:`Host.in_autostart`).  Hosts that cannot say add nothing."""
    try:
        started = m.source.in_autostart(vm.name)
    except VmigrateError:
        return ""
    if not started:
        return ""
    return (f"; WARNING: {vm.name} is in host {vm.host}'s autostart list, so a restart of that "
            "host would power her on beside the copy: remove her autostart entry after the "
            "cutover, or use cutover.identity: retire-source, which takes her out")


def _retire_check(m: Migration, vm: VmInfo) -> HostCheck:
    p, new = m.params, retired_name(m)
    try:
        plan = m.source.retire_plan(vm.name, new, retire_note(m))
    except VmigrateError as exc:  # e.g. the API user may not rename the VM
        return HostCheck("identity", False, f"retire-source: {exc.message}", exc)
    if plan is None:
        return HostCheck(
            "identity", False, f"retire-source: host {p.source.host} cannot retire a VM",
            PreflightError(
                f"cutover.identity retire-source needs a source host that can rename a VM and "
                f"park it; {p.source.host} ({p.source.type}) cannot",
                hint="set cutover.identity: new-name and a dest_name", parameter="identity"))
    if m.source.vm_exists(new):
        return HostCheck(
            "identity", False, f"retire-source: {new} is taken on {p.source.host}",
            IdentityConflict(
                f"the source VM's retired name {new} is taken on {p.source.host}",
                hint="rename or remove that VM, or give another change_id", vm=new))
    nics = len(plan.saved.get("nics") or [])
    auto = "leaves autostart" if plan.saved.get("autostart") else "is not in autostart"
    return HostCheck(
        "identity", True,
        f"retire-source: at cutover {vm.name} is renamed {new}, her {nics} NIC(s) stop "
        f"connecting at power-on, she {auto}; the copy takes the name {p.vm} and her MAC "
        "address(es), made static; vmigrate rollback restores her")


__all__ = ["alice_at_dest", "identity_checks", "name_goes_at_cutover", "registered_where",
           "retire_note", "retired_name"]
