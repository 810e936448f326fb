"""The words vmigrate chooses between: modes, host types, statuses, cycle kinds.

Each is a ``Literal`` type, so a value is still the plain string that params files,
``state.json`` and the journal hold (nothing changes on disk or in papermill's
parameters), while mypy's strict equality refuses a comparison with a misspelled
word (``certify == "ful"`` is an error, which a ``StrEnum`` compared with a string
would not be).  Each vocabulary also has its tuple of values, in the order shown
to users, for validation and the CLI's choices; :func:`pick` narrows a string read
from a file to the vocabulary.  ``PowerState`` (control/host.py) stays the model's
``StrEnum``: it is never read back from a user's file.
"""

from __future__ import annotations

from typing import Literal, TypeVar, get_args

HostType = Literal["lab", "vsphere", "esxi"]  #: params ``type``: which control plane
HostsKind = Literal["", "lab", "real"]  #: params ``hosts``: "" (not said), a rehearsal or a change
#: params ``sync.change_tracking``: auto/require use the host's CBT, hash compares block
#: digests, snapshot-delta reads the grains of the previous cycle's kept snapshot's delta
ChangeTracking = Literal["auto", "require", "hash", "snapshot-delta"]
CertifyMode = Literal["none", "changed", "full"]  #: ``sync.certify``, ``cutover.certify``
Algorithm = Literal["auto", "xxh3_128", "blake3", "sha1", "sha256", "blake2b", "md5"]
SshMode = Literal["relay", "direct", "auto"]  #: how the source's disks reach the destination
SshCompress = Literal["", "zlib", "zstd", "lz4", "auto"]  #: "" is off
DiskMode = Literal["full", "tracked", "hash"]  #: how one disk's extents were chosen
CycleKind = Literal["seed", "delta", "final"]
CycleStatus = Literal["ok", "failed", "interrupted"]
StepStatus = Literal["pending", "running", "done", "failed"]  #: a cutover step in state.json
CutoverStatus = Literal["running", "probes_failed", "stopped", "rolling_back", "rolled_back",
                        "aborted", "done"]  #: a cutover attempt in state.json
#: params ``cutover.ready``: how Bob counts as ready (auto: tools if Alice runs them)
ReadyMode = Literal["auto", "tools", "power-and-probes"]
#: a disk's provisioning, as ``vmkfstools -d`` names it (VMware vSphere Storage,
#: "Supported Disk Formats"); read from Alice, given to Bob's copy
DiskFormat = Literal["thin", "zeroedthick", "eagerzeroedthick"]

HOST_TYPES: tuple[HostType, ...] = get_args(HostType)
HOSTS_KINDS: tuple[HostsKind, ...] = get_args(HostsKind)
CHANGE_TRACKING: tuple[ChangeTracking, ...] = get_args(ChangeTracking)
CERTIFY_MODES: tuple[CertifyMode, ...] = get_args(CertifyMode)
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
SSH_MODES: tuple[SshMode, ...] = get_args(SshMode)
SSH_COMPRESS: tuple[SshCompress, ...] = get_args(SshCompress)
DISK_MODES: tuple[DiskMode, ...] = get_args(DiskMode)
CYCLE_KINDS: tuple[CycleKind, ...] = get_args(CycleKind)
CYCLE_STATUSES: tuple[CycleStatus, ...] = get_args(CycleStatus)
STEP_STATUSES: tuple[StepStatus, ...] = get_args(StepStatus)
CUTOVER_STATUSES: tuple[CutoverStatus, ...] = get_args(CutoverStatus)
#: params ``cutover.identity``: Bob under a name of his own (Alice stays as she is), or
#: Alice renamed and parked at cutover so that Bob takes her name
IdentityPolicy = Literal["new-name", "retire-source"]
IDENTITY_POLICIES: tuple[IdentityPolicy, ...] = get_args(IdentityPolicy)
READY_MODES: tuple[ReadyMode, ...] = get_args(ReadyMode)
DISK_FORMATS: tuple[DiskFormat, ...] = get_args(DiskFormat)

W = TypeVar("W", bound=str)


def pick(words: tuple[W, ...], value: object) -> W:
    """``value`` as one of ``words`` (ValueError naming the allowed words, never the value:
    it may come from a file and be anything)."""
    for word in words:
        if value == word:
            return word
    raise ValueError(f"must be one of {', '.join(words) or '(empty)'}")
