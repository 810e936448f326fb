"""Migration parameters: one schema for the CLI's YAML file and the runbooks.

The package: this schema (sections, defaults, :func:`validate`), ``paramfile``
(reading a file strictly), ``hostrefs`` (host names and secret references) and
``workspace_rules`` (which folder may be a workspace).

papermill checks nothing about parameters, so every face validates through
:func:`validate` (names, types, ranges, the workspace folder) before anything is
touched or archived and before any kernel starts.  Secrets are never values
here, only references (an environment variable or keyring entry); no error
message repeats a value, since a rejected value may be a pasted secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import ParameterError
from ..modes import (
    ALGORITHMS,
    CERTIFY_MODES,
    CHANGE_TRACKING,
    HOST_TYPES,
    HOSTS_KINDS,
    IDENTITY_POLICIES,
    READY_MODES,
    SSH_COMPRESS,
    SSH_MODES,
    Algorithm,
    CertifyMode,
    ChangeTracking,
    HostsKind,
    IdentityPolicy,
    ReadyMode,
    SshCompress,
    SshMode,
    pick,
)
from ..units import parse_duration, parse_size
from .hostrefs import NAME, REFERENCE_HINT, check_field, check_host, check_text, is_secret_key
from .paramfile import read_params_file, shown
from .paths import lab_root_under
from .workspace_rules import ESXI_DATASTORES, check_workspace


@dataclass(frozen=True)
class _HostBase:
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
class LabHostParams(_HostBase):
    """A host of the embedded lab (``type: lab``): a folder, maybe served over SSH."""

    type: Literal["lab"] = "lab"
    lab_root: str = ".vmigrate-lab"


@dataclass(frozen=True)
class VsphereHostParams(_HostBase):
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


@dataclass(frozen=True)
class EsxiHostParams(_HostBase):
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
_HOST_KINDS: dict[str, type[LabHostParams] | type[VsphereHostParams] | type[EsxiHostParams]] = {
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


_CHOICES: dict[str, tuple[str, ...]] = {
    "type": HOST_TYPES,
    "change_tracking": CHANGE_TRACKING,
    "certify": CERTIFY_MODES,
    "ready": READY_MODES,
    "algorithm": ALGORITHMS,
    "ssh_mode": SSH_MODES,
    "ssh_compress": SSH_COMPRESS,
    "identity": IDENTITY_POLICIES,
}
#: Allowed values of the fields that take a word (the CLI's choices come from here too).
CHOICES = _CHOICES
_SIZES = {"hash_block", "certify_block", "checkpoint_bytes"}
_RATES = {"bwlimit"}  #: sizes per second ("50MB", "50MB/s"); 0 or "" for no cap
_DURATIONS = {"interval", "downtime_budget", "target_interval", "shutdown_timeout",
              "api_timeout", "snapshot_remove_timeout", "command_timeout",
              "max_sync_age", "probe_timeout", "ready_timeout", "rollback_grace",
              "expected_shutdown", "expected_boot"}
#: Durations that 0 would break (a zero socket timeout fails every API call).
_POSITIVE_DURATIONS = {"api_timeout", "snapshot_remove_timeout", "command_timeout"}
#: Fields holding a duration in seconds (written ``90s``, ``5m``, ``1h`` in a file).
DURATIONS = frozenset(_DURATIONS)
_RANGES = {"max_cycles": (1, 1000), "full_certify_within": (0, 1000), "parallel_disks": (1, 16),
           "ssh_port": (1, 65535)}
_CHANGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{1,63}\Z")
#: Never in a file: each run decides (CLI flag, runbook parameter).
_PER_RUN = {"force": "overriding a no-go is decided per run: give vmigrate cutover --force "
                     "(vmigrate run cutover --force, or the cutover runbook's force "
                     "parameter), never in a params file"}


_S = TypeVar("_S")  #: a section's dataclass
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


def _convert(section: str, name: str, value: Any, default: Any) -> Any:
    where = f"{section}.{name}" if section else name
    if is_secret_key(name):
        raise ParameterError(f"parameter {where} holds a secret value", hint=REFERENCE_HINT,
                             parameter=where)
    try:
        if name in _SIZES:
            v: Any = parse_size(value)
            if v <= 0 or v % 512:
                raise ValueError("must be a positive multiple of 512 bytes")
            return v
        if name in _RATES:
            if isinstance(value, str):
                text = value.strip()
                text = text[:-2] if text.endswith("/s") else text
                return parse_size(text) if text else 0
            return parse_size(value)
        if name in _DURATIONS:
            seconds = parse_duration(value)
            if seconds <= 0 and name in _POSITIVE_DURATIONS:
                raise ValueError("must be more than 0 seconds")
            return seconds
        if name == "probes":
            return _ports(value)
        if name == "network_map":
            return _network_map(value)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, not {_kind(value)}")
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"must be an integer, not {_kind(value)}")
            lo, hi = _RANGES.get(name, (value, value))
            if not lo <= value <= hi:
                raise ValueError(f"must be from {lo} to {hi}")
            return value
        if isinstance(default, (str, Path)):
            if not isinstance(value, (str, Path)):
                raise ValueError(f"must be a string, not {_kind(value)}")
            value = str(value)
            check_field(where, name, value)
            check_text(where, value, multiline=name == "probe_command")
            return pick(_CHOICES[name], value) if name in _CHOICES else value
    except ValueError as exc:
        raise ParameterError(f"parameter {where}: {exc}", parameter=where) from exc
    return value


def _kind(value: Any) -> str:
    """What a rejected value is, without repeating it."""
    return {str: "a string", int: "a number", float: "a number", bool: "true/false",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _plain(text: Any) -> bool:
    return isinstance(text, str) and 0 < len(text) <= 256 and text.isprintable()


def _ports(value: Any) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, (list, tuple)) or len(items) > 100 or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 < x < 65536 for x in items):
        raise ValueError("must be a list of TCP ports (1-65535)")
    return tuple(items)


def _network_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > 1000 or not all(
            _plain(k) and _plain(v) for k, v in value.items()):
        raise ValueError("must map source network names to destination network names "
                         "(printable text, one line each)")
    return dict(value)


def _section(cls: type[_S], section: str, raw: Any, required: tuple[str, ...] = ()) -> _S:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParameterError(f"parameter {section} must be a mapping", parameter=section)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if is_secret_key(key):
            _convert(section, shown(key), value, "")
        if key in _PER_RUN:
            raise ParameterError(f"parameter {section}.{key} does not belong in a params file",
                                 hint=_PER_RUN[key], parameter=f"{section}.{key}")
        if key not in known:
            raise ParameterError(
                f"unknown parameter {section + '.' if section else ''}{shown(key)}",
                hint=f"known parameters here: {', '.join(sorted(known))}",
                parameter=f"{section}.{shown(key)}" if section else shown(key),
            )
        f = known[key]
        default = f.default
        values[key] = _convert(section, key, value, default)
    if isinstance(cls, type) and issubclass(cls, _HostBase):
        check_host(section, values)
    for key in required:
        if not values.get(key):
            raise ParameterError(
                f"missing parameter {section + '.' if section else ''}{key}", parameter=key
            )
    return cls(**values)


def _host_section(side: str, raw: Any) -> HostParams:
    """One host's section as the kind its ``type`` names (default lab); a key another
    kind takes is refused in one line naming the key and the kind."""
    kind = _convert(side, "type", raw.get("type", "lab") if isinstance(raw, Mapping) else "lab",
                    "")
    cls = _HOST_KINDS[kind]
    if isinstance(raw, Mapping):
        mine = {f.name for f in fields(cls)}
        for key in raw:
            other = next((c for k, c in _HOST_KINDS.items()
                          if k != kind and key in {f.name for f in fields(c)}), None)
            if key not in mine and other is not None:
                # a pasted secret is refused as one first (without repeating it)
                _convert(side, key, raw[key], other.__dataclass_fields__[key].default)
                raise ParameterError(
                    f"parameter {side}.{key} does not apply to a {kind} host "
                    f"({side}.type is {kind})",
                    hint=f"remove it, or set {side}.type: {other.type} if the host is one",
                    parameter=f"{side}.{key}")
    return _section(cls, side, raw, required=("host",))


def validate(raw: Mapping[str, Any], base_dir: Path | None = None) -> MigrationParams:
    """Check a parameter mapping and build :class:`MigrationParams` (or raise)."""
    if not isinstance(raw, Mapping):
        raise ParameterError("parameters must be a mapping of names to values")
    top = dict(raw)
    allowed = {f.name for f in fields(MigrationParams)}
    for key in top:
        if is_secret_key(key):
            _convert("", shown(key), top[key], "")
        if key in _PER_RUN:
            raise ParameterError(f"parameter {key} does not belong in a params file",
                                 hint=_PER_RUN[key], parameter=str(key))
        if key not in allowed:
            raise ParameterError(
                f"unknown parameter {shown(key)}",
                hint=f"known parameters: {', '.join(sorted(allowed))}",
                parameter=shown(key),
            )
    for key in ("vm", "source", "destination", "workspace"):
        if key not in top or (isinstance(top[key], str) and not top[key]) or top[key] is None:
            raise ParameterError(f"missing parameter {key}", parameter=key)
    for key in ("vm", "dest_name"):
        value = top.get(key, "")
        if value and (not isinstance(value, str) or not NAME.match(value)):
            raise ParameterError(
                f"parameter {key}: not a valid VM name",
                hint="use letters, digits, '.', '_' and '-' (at most 80), on one line",
                parameter=key,
            )
    source = _host_section("source", top["source"])
    dest = _host_section("destination", top["destination"])
    if base_dir is not None:  # relative lab roots: the project's, never the process's cwd
        source, dest = lab_root_under(source, base_dir), lab_root_under(dest, base_dir)
    if dest.ssh_mode != _HostBase.ssh_mode:
        raise ParameterError(
            "parameter destination.ssh_mode has no effect: the transfer mode is the source's",
            hint="set source.ssh_mode (relay, direct or auto) instead",
            parameter="destination.ssh_mode",
        )
    sync = _section(SyncParams, "sync", top.get("sync"))
    cutover = _section(CutoverParams, "cutover", top.get("cutover"))
    if cutover.identity == "retire-source" and top.get("dest_name") not in (None, "", top["vm"]):
        raise ParameterError(
            "parameter dest_name: with cutover.identity retire-source the copy takes the "
            "source's name", hint="remove dest_name, or set cutover.identity: new-name",
            parameter="dest_name")
    change_id = top.get("change_id") or ""
    if change_id and (not isinstance(change_id, str) or not _CHANGE_ID.match(change_id)):
        raise ParameterError(
            "parameter change_id: not a change reference",
            hint="give the change ticket, e.g. CHG-12345 (letters, digits, . _ / -)",
            parameter="change_id",
        )
    try:
        hosts = pick(HOSTS_KINDS, top.get("hosts") or "")
    except ValueError:
        raise ParameterError("parameter hosts must be lab or real", parameter="hosts") from None
    for side, hp in (("source", source), ("destination", dest)):
        if hosts and (hp.type == "lab") != (hosts == "lab"):
            raise ParameterError(
                f"parameter {side}.type is {hp.type!r} but hosts is {hosts!r}",
                hint="a rehearsal uses lab hosts on both sides, a real change none",
                parameter=f"{side}.type",
            )
    if not isinstance(top["workspace"], (str, Path)):
        raise ParameterError("parameter workspace must be a folder name", parameter="workspace")
    workspace = Path(check_text("workspace", str(top["workspace"])))
    if base_dir is not None and not workspace.is_absolute():
        workspace = base_dir / workspace
    budget = _convert("", "downtime_budget", top.get("downtime_budget", 120.0), 0.0)
    if budget <= 0:
        raise ParameterError("parameter downtime_budget must be positive", parameter="downtime_budget")
    operator = top.get("operator", "") or ""
    if not isinstance(operator, str):
        raise ParameterError("parameter operator must be a string", parameter="operator")
    check_text("operator", operator)
    _check_workspace(workspace, (source, dest), base_dir)
    return MigrationParams(
        vm=top["vm"],
        dest_name=top.get("dest_name", "") or "",
        source=source,
        destination=dest,
        workspace=workspace,
        operator=operator,
        downtime_budget=budget,
        change_id=change_id,
        hosts=hosts,
        sync=sync,
        cutover=cutover,
    )


def _check_workspace(workspace: Path, hosts: tuple[HostParams, ...],
                     base_dir: Path | None) -> None:
    """The workspace is vmigrate's, new or empty; never in a lab or on a datastore."""
    base = base_dir or Path.cwd()
    labs = [base / hp.lab_root for hp in hosts if isinstance(hp, LabHostParams)]
    stores = {ESXI_DATASTORES,
              *(Path(hp.datastore_root) for hp in hosts
                if isinstance(hp, (VsphereHostParams, EsxiHostParams)))}
    check_workspace(base / workspace, labs, stores)


def load(path: str | Path, overrides: Mapping[str, Any] | None = None) -> MigrationParams:
    """Read a YAML params file (relative paths inside are taken from cwd)."""
    merged = merge(read_params_file(path), overrides or {})
    return validate(merged)


def merge(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides (``sync.certify=full``) onto a raw parameter mapping."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split(".")
        target = out
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ParameterError(f"parameter {part} is not a section", parameter=key)
            target = nxt
        target[parts[-1]] = value
    return out
