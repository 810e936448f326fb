"""Preflight lines of a vSphere host: what would fail later, found before anything changes.

Each function reads the API (never writes) and returns :class:`HostCheck` lines whose
error is an ``InputError`` (exit 2).  The behaviour each one guards against, with its
source, is in ``tests/peers/README.md`` ("issue 11 items 5 and 7") and
``docs/real-hosts.md``:

* independent disks are "not affected by snapshots" (``VirtualDiskMode``), so their
  flat file is the live, locked one; multi-writer disks cannot be snapshotted (KB
  1034165); an RDM is a LUN, not a file; a vSAN or vVol disk is an object with no
  ``-flat.vmdk`` (``backingObjectId``, datastore ``summary.type``);
* the API user's privileges, read with ``FetchUserPrivilegeOnEntities`` (6.5+);
* the destination's support for the VM's hardware version (``QueryConfigOptionDescriptor``);
* the SSH service (``TSM-SSH``) and, for direct mode, the ``sshClient`` firewall rule;
* the VM's ``runtime.host``: DRS may move it (also rechecked every cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import HostNotPrepared, UnsupportedDisk, VmMoved
from ..dspaths import parse_ds_path
from ..host import HostCheck, VmInfo
from ._vmomi import vim, vmodl
from .connection import Connection
from .inventory import DiskDetail, collect

#: Datastore types whose disks are objects, not files a shell can open (vSphere API
#: ``DatastoreSummary.type``: VMFS, NFS, NFS41, CIFS, vsan, VFFS, VVOL, PMEM).
OBJECT_DATASTORES = frozenset({"vsan", "vvol"})

#: (privilege, what needs it) on the source VM
SOURCE_PRIVILEGES = (
    ("VirtualMachine.State.CreateSnapshot", "a snapshot each cycle"),
    ("VirtualMachine.State.RemoveSnapshot", "removing it"),
    ("VirtualMachine.Provisioning.DiskRandomRead", "QueryChangedDiskAreas"),
    ("VirtualMachine.Interact.PowerOff", "stopping the source at cutover"),
    ("VirtualMachine.Interact.PowerOn", "restarting it on rollback"),
)
#: (privilege, what needs it) on the destination host
DEST_PRIVILEGES = (
    ("VirtualMachine.Inventory.Register", "registering the copy"),
    ("VirtualMachine.Inventory.Unregister", "unregistering it on rollback"),
    ("Resource.AssignVMToPool", "placing it in a resource pool"),
    ("VirtualMachine.Interact.PowerOn", "starting it"),
    ("Network.Assign", "connecting its network cards"),
)

_API_FAULTS = (vmodl.MethodFault, AttributeError)


def _fault_text(exc: BaseException) -> str:
    return str(getattr(exc, "msg", "") or type(exc).__name__)


def disk_kinds(details: Sequence[DiskDetail], ds_types: dict[str, str], vm: str) -> HostCheck:
    """Every disk a persistent, unshared flat file on a file-system datastore."""
    bad = [(d, why) for d in details if (why := _unsupported(d, ds_types))]
    if not bad:
        kinds = ", ".join(sorted({d.provisioning for d in details})) or "none"
        return HostCheck("disk types", True,
                         f"{len(details)} persistent flat disk(s), {kinds}")
    listed = "; ".join(f"{d.label} ({d.descriptor}) {why}" for d, why in bad)
    return HostCheck("disk types", False, listed, UnsupportedDisk(
        f"VM {vm} has disks vmigrate cannot copy: {listed}", vm=vm,
        disks=[d.key for d, _ in bad]))


def _unsupported(d: DiskDetail, ds_types: dict[str, str]) -> str:
    """Why ``d`` cannot be copied from a snapshot's frozen flat file ("" if it can)."""
    if d.rdm_mode:
        return f"is a raw device mapping ({d.rdm_mode}): a LUN, not a file"
    if not d.backing_type.endswith("FlatVer2BackingInfo"):
        return f"has a {d.backing_type} backing: vmigrate copies flat VMDK disks only"
    if d.independent:
        return f"is {d.mode}: not in a snapshot, so never frozen (and change tracking is off)"
    if d.multi_writer:
        return "is multi-writer (sharingMultiWriter): it cannot be snapshotted"
    ds = parse_ds_path(d.base_descriptor)[0]
    kind = ds_types.get(ds, "")
    if d.backing_object_id or kind.lower() in OBJECT_DATASTORES:
        return (f"is an object on {kind or 'an object'} datastore [{ds}] "
                f"(backingObjectId {d.backing_object_id or '-'}): there is no -flat.vmdk to read")
    return ""


def datastore_types(conn: Connection) -> dict[str, str]:
    """Datastore name -> ``summary.type`` (VMFS, NFS, vsan, VVOL...)."""
    return {str(v.get("name")): str(v.get("summary.type") or "")
            for _, v in collect(conn, vim.Datastore, ["name", "summary.type"])}


def privileges(conn: Connection, entity: Any, needed: Sequence[tuple[str, str]],
               where: str) -> HostCheck:
    """The API user holds every privilege in ``needed`` on ``entity``."""
    name = f"privileges on {where}"

    def run() -> tuple[str, set[str]] | str:
        user = str(conn.content.sessionManager.currentSession.userName or conn.user)
        try:
            res = conn.content.authorizationManager.FetchUserPrivilegeOnEntities(
                entities=[entity], userName=user)
        except _API_FAULTS as exc:  # e.g. an ESXi older than 6.5: not a reason to refuse
            return _fault_text(exc)
        return user, {p for r in res or [] for p in (r.privileges or [])}

    got = conn.call(run, f"reading the privileges of the API user on {where}")
    if isinstance(got, str):
        return HostCheck(name, True, f"not checked: {got}")
    user, held = got
    missing = [(p, why) for p, why in needed if p not in held]
    if not missing:
        return HostCheck(name, True, f"{user} has the {len(needed)} needed")
    listed = ", ".join(f"{p} ({why})" for p, why in missing)
    return HostCheck(name, False, f"{user} lacks {listed}", HostNotPrepared(
        f"the API user {user} lacks on {where}: {listed}",
        hint="grant these privileges to the user's role on that object (or a parent with "
        "propagation), see docs/real-hosts.md", user=user, missing=[p for p, _ in missing]))


def hardware_version(conn: Connection, host: Any, host_name: str, version: str) -> HostCheck:
    """The destination host can power on a VM of ``version`` (``vmx-NN``)."""
    name = "hardware version"
    if not version:
        return HostCheck(name, True, "the VM reports none: not checked")

    def run() -> dict[str, bool] | str:
        try:
            descriptors = host.parent.environmentBrowser.QueryConfigOptionDescriptor()
        except _API_FAULTS as exc:
            return _fault_text(exc)
        return {str(d.key): d.runSupported is not False for d in descriptors or []
                if not d.host or any(h == host for h in d.host)}

    supported = conn.call(run, f"reading the hardware versions of {host_name}")
    if isinstance(supported, str):
        return HostCheck(name, True, f"not checked: {supported}")
    runs = sorted(k for k, ok in supported.items() if ok)
    if supported.get(version):
        return HostCheck(name, True, f"{version} runs on {host_name}")
    return HostCheck(name, False, f"{host_name} cannot run {version} (runs {', '.join(runs)})",
                     HostNotPrepared(
                         f"host {host_name} cannot run hardware version {version} "
                         f"(it runs {', '.join(runs) or 'none it reports'})",
                         hint="choose a destination whose ESXi release supports that hardware "
                         "version (upgrade it), see docs/real-hosts.md",
                         host=host_name, version=version))


def ssh_service(conn: Connection, host: Any, host_name: str) -> HostCheck:
    """The SSH service (``TSM-SSH``) runs: the data plane reaches datastores over SSH."""
    name = f"SSH service on {host_name}"

    def run() -> bool | None:
        svc = host.config.service if host.config is not None else None
        hits = [s for s in (svc.service if svc is not None else []) if s.key == "TSM-SSH"]
        return bool(hits[0].running) if hits else None

    running = conn.call(run, f"reading the services of {host_name}")
    if running is None:
        return HostCheck(name, True, "not reported by the API: not checked")
    if running:
        return HostCheck(name, True, "TSM-SSH running")
    return HostCheck(name, False, "TSM-SSH stopped", HostNotPrepared(
        f"the SSH service (TSM-SSH) is stopped on host {host_name}; vmigrate reads and writes "
        "disks through an agent it starts over SSH",
        hint="start the SSH service on the host (vSphere Client: Host > Configure > Services > "
        "SSH > Start), see docs/real-hosts.md", host=host_name))


def ssh_client_rule(conn: Connection, host: Any, host_name: str, mode: str) -> HostCheck:
    """Direct mode: the source's outbound ``sshClient`` firewall ruleset is enabled."""
    name = "firewall sshClient"

    def run() -> bool | None:
        fw = host.config.firewall if host.config is not None else None
        hits = [r for r in (fw.ruleset if fw is not None else []) if r.key == "sshClient"]
        return bool(hits[0].enabled) if hits else None

    enabled = conn.call(run, f"reading the firewall of {host_name}")
    if enabled is None or enabled:
        return HostCheck(name, True, f"outbound SSH from {host_name}: "
                         + ("enabled" if enabled else "not reported: not checked"))
    if mode == "auto":
        return HostCheck(name, True, f"disabled on {host_name}: auto mode relays")
    return HostCheck(name, False, f"disabled on {host_name}: direct mode cannot connect out",
                     HostNotPrepared(
                         f"direct mode needs outbound SSH from {host_name}, and its firewall "
                         "ruleset sshClient is disabled",
                         hint="enable the ruleset (esxcli network firewall ruleset set "
                         "--ruleset-id sshClient --enabled true), or set source.ssh_mode: relay",
                         host=host_name, ruleset="sshClient"))


def running_host(vm: VmInfo, host_name: str) -> HostCheck:
    """The VM runs on the configured source host (DRS or a vMotion may move it)."""
    if not host_name or not vm.host or vm.host == host_name:
        return HostCheck("source host", True, f"{vm.name} runs on {vm.host or host_name}")
    return HostCheck("source host", False, f"{vm.name} runs on {vm.host}, not {host_name}",
                     VmMoved(f"VM {vm.name} runs on host {vm.host}, not on the source host "
                             f"{host_name} (moved by DRS or a vMotion?)",
                             vm=vm.name, host=vm.host, expected=host_name))


__all__ = [
    "DEST_PRIVILEGES",
    "OBJECT_DATASTORES",
    "SOURCE_PRIVILEGES",
    "datastore_types",
    "disk_kinds",
    "hardware_version",
    "privileges",
    "running_host",
    "ssh_client_rule",
    "ssh_service",
]
