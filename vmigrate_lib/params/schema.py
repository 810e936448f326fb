"""The parameter schema: each section's dataclass, its fields and defaults.

Only shapes live here (what a host, ``sync`` and ``cutover`` take, and their defaults);
checking a raw mapping against them is ``convert`` and :func:`vmigrate_lib.params.validate`.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ..modes import (
    Algorithm,
    CertifyMode,
    ChangeTracking,
    HostsKind,
    IdentityPolicy,
    ReadyMode,
    SshCompress,
    SshMode,
)


@dataclass(frozen=True)
class HostBase:
    """What every kind of host takes: its name, the datastore, and how SSH reaches it."""

    host: str = ""
    datastore: str = ""  #: destination datastore (empty: the VM's own / the first one)
    #: lab: ssh://[user@]host[:port] serves the lab's datastores over SSH (empty: local
    #: folders); vSphere: the API's https URL (empty: https://host)
    url: str = ""
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_key: str = ""
    ssh_known_hosts: str = ""
    ssh_fingerprint: str = ""
    #: SSH password references, separate from the API's: a vCenter password is never
    #: offered to an ESXi host's sshd.  Empty: key file or ssh-agent only.
    ssh_password_env: str = ""
    ssh_password_keyring: str = ""
    allow_unknown_host_key: bool = False  #: accept a host key not in known_hosts (logged)
    # SSH data plane (a lab host with url ssh://..., an ESXi host's datastores)
    ssh_mode: SshMode = "relay"  #: relay | direct | auto; read on the *source* host
    ssh_compress: SshCompress = ""  #: "" (off) | zlib | zstd | auto
    bwlimit: int = 0  #: cap on this host's SSH data, bytes per second ("50MB"); 0: none
    ssh_direct_key: str = ""  #: direct mode: key *on the source host* authorized on the destination
    ssh_direct_known_hosts: str = ""  #: direct mode: known_hosts *on the source host*


@dataclass(frozen=True)
class LabHostParams(HostBase):
    """A host of the embedded lab (``type: lab``): a folder, maybe served over SSH."""

    type: Literal["lab"] = "lab"
    lab_root: str = ".vmigrate-lab"


@dataclass(frozen=True)
class VsphereHostParams(HostBase):
    """An ESXi host or vCenter (``type: vsphere``): the API through pyVmomi, disks over SSH.
    References only, never secrets."""

    type: Literal["vsphere"] = "vsphere"
    user: str = ""
    password_env: str = ""
    password_keyring: str = ""
    verify_tls: bool = True
    datastore_root: str = "/vmfs/volumes"  #: where the SSH host mounts datastores
    #: longest wait for one API answer, seconds: a host that stops answering fails the call
    api_timeout: float = 300.0
    #: snapshot removal (consolidation) may take this long, seconds; one still running
    #: then goes on on the host and the next run waits for it
    snapshot_remove_timeout: float = 7200.0
    #: a VM found running on a delta disk: ConsolidateVMDisks_Task before the first
    #: snapshot (else refused at preflight)
    allow_consolidate: bool = False
    #: destination: where Bob is registered in vCenter's inventory, as inventory paths
    #: (``DC/vm/Migrated``, ``DC/host/Cluster/Resources/Pool``); "": the host's
    #: datacenter's VM folder and its compute resource's root pool
    vm_folder: str = ""
    resource_pool: str = ""


@dataclass(frozen=True)
class EsxiHostParams(HostBase):
    """A standalone ESXi host driven over SSH alone (``type: esxi``): its own commands
    (vim-cmd, vmkfstools) for control, the same connection for the disks; no API URL, so
    any licence, the free one included."""

    type: Literal["esxi"] = "esxi"
    datastore_root: str = "/vmfs/volumes"  #: where the host mounts datastores by name
    #: longest wait for one command (vim-cmd, vmkfstools), seconds
    command_timeout: float = 600.0
    #: snapshot removal (consolidation) may take this long, seconds
    snapshot_remove_timeout: float = 7200.0


#: How to reach one host, tagged by ``type``: ``hp.type == "lab"`` narrows it for mypy.
HostParams = LabHostParams | VsphereHostParams | EsxiHostParams
HOST_CLASSES: dict[str, type[LabHostParams] | type[VsphereHostParams] | type[EsxiHostParams]] = {
    "lab": LabHostParams, "vsphere": VsphereHostParams, "esxi": EsxiHostParams}


@dataclass(frozen=True)
class SyncParams:
    change_tracking: ChangeTracking = "auto"  #: auto | require | hash | snapshot-delta
    allow_enable_cbt: bool = False
    certify: CertifyMode = "changed"  #: none | changed | full (each cycle; the seed always full)
    hash_block: int = 64 * 1024
    certify_block: int = 1024 * 1024
    algorithm: Algorithm = "auto"
    interval: float = 0.0  #: pause between delta cycles, seconds (vmigrate sync --cycles N)
    checkpoint_bytes: int = 64 * 1024 * 1024
    parallel_disks: int = 2  #: disks copied (and hash-compared) at the same time, 1..16
    max_cycles: int = 10  #: until converged (sync runbook, sync --until-converged): at most this many
    target_interval: float = 5.0  #: until converged: the planner shrinks the pause toward this


@dataclass(frozen=True)
class CutoverParams:
    """The cutover's standing choices (``CutoverOptions`` defaults; CLI flags override).

    ``force`` is deliberately not here: overriding a no-go is a decision for one
    run (``vmigrate cutover --force``, the cutover runbook's ``force``), never a file's.
    """

    shutdown_timeout: float = 300.0  #: graceful guest shutdown may take this long, seconds
    allow_hard_poweroff: bool = False  #: after the timeout: power off hard (else roll back)
    certify: CertifyMode = "changed"  #: none | changed | full, on the final delta
    max_sync_age: float = 600.0  #: go/no-go: the last sync at most this old, seconds
    probes: tuple[int, ...] = ()  #: TCP ports on the new VM that must accept a connection
    probe_command: str = ""  #: a command that must exit 0 ($VMIGRATE_VM, $VMIGRATE_VM_IP)
    probe_host: str = ""  #: address to probe; empty: the VM's reported IP
    probe_timeout: float = 60.0
    ready_timeout: float = 600.0  #: until the new VM is ready (tools / IP; lab: boot check)
    #: how the new VM counts as ready: tools (Tools, an IP, a heartbeat), power-and-probes
    #: (powered on, then the probes), auto (tools when Alice runs Tools at go/no-go)
    ready: ReadyMode = "auto"
    #: once the new VM has run this long, a failure never rolls back by itself, seconds
    rollback_grace: float = 60.0
    #: go/no-go: a whole-disk certify within the last N cycles (outside the downtime;
    #: vmigrate sync --certify full); 0: not required
    full_certify_within: int = 3
    network_map: dict[str, str] = field(default_factory=dict)  #: source network -> destination
    #: the planner's estimates until a cutover (or a rehearsal) has measured them, seconds
    expected_shutdown: float = 30.0
    expected_boot: float = 60.0
    #: new-name: Bob is registered under dest_name (or the VM's name), which must be free
    #: where he is registered, and the source stays as it is; retire-source: at cutover
    #: the source is renamed <vm>-retired-<change_id>, its NICs do not connect at
    #: power-on, it leaves autostart (a rollback undoes all three), and Bob takes its name
    identity: IdentityPolicy = "new-name"


@dataclass(frozen=True)
class MigrationParams:
    vm: str
    source: HostParams
    destination: HostParams
    workspace: Path
    dest_name: str = ""
    operator: str = ""
    downtime_budget: float = 120.0
    change_id: str = ""  #: the change ticket (CHG-12345); the runbooks require it
    hosts: HostsKind = ""  #: lab | real; empty: not said (the runbooks infer it from the types)
    sync: SyncParams = field(default_factory=SyncParams)
    cutover: CutoverParams = field(default_factory=CutoverParams)

    @property
    def target_name(self) -> str:
        return self.dest_name or self.vm

    @property
    def host_kind(self) -> HostsKind:
        """``hosts`` as given, else lab when both sides are lab hosts, else real."""
        if self.hosts:
            return self.hosts
        return "lab" if self.source.type == self.destination.type == "lab" else "real"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["workspace"] = str(self.workspace)
        d["cutover"]["probes"] = list(self.cutover.probes)
        return d


_SECTIONS: dict[str, type] = {"": MigrationParams, "sync": SyncParams, "cutover": CutoverParams}


def default_of(section: str, name: str) -> Any:
    """The schema's default of ``section.name`` (``""``: top level): the one place defaults
    live, which the CLI's help reads (``default_of("cutover", "max_sync_age")`` -> 600.0)."""
    for f in fields(_SECTIONS[section]):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
            break
    raise KeyError(f"{section}.{name} has no default in the parameter schema")
