"""The exception tree of vmigrate.

Every error carries structured fields and an actionable ``hint`` (what to do
about it), so that the CLI, the runbooks and the journal can show one clear
sentence and record machine-readable details.  Lower layers raise these; foreign
exceptions (OSError, paramiko, pyVmomi, ...) are converted at the boundary with
``raise ... from exc``.

``exit_code`` follows the CLI contract: 2 for bad input caught before any change
(nothing was touched), 1 for a fault during work (state is resumable).

The classes live by family: ``base`` (VmigrateError), ``bad_input`` (exit 2),
``preflight`` (exit 2, a precondition), ``faults`` (exit 1, resumable), ``os_errors``
(OSError subclasses below the boundary); every name is re-exported here, so
``from vmigrate_lib.errors import X`` is the one way to import them.
"""

from __future__ import annotations

from .bad_input import (
    AgentFileUnsafe,
    AuthenticationError,
    CertificateError,
    ChangeMismatch,
    DatastoreNotFound,
    HostKeyError,
    HostNotFound,
    InputError,
    MigrationFinished,
    NotFoundError,
    NotVsphereEndpoint,
    ParameterError,
    PermissionDenied,
    RollbackRefused,
    SshHostUnreachable,
    UnsafeShellArgument,
    VmAmbiguous,
    VmNotFound,
    WaveFileError,
    WaveStateCorrupt,
)
from .base import (
    VmigrateError,
)
from .faults import (
    AgentError,
    BobMayHaveServed,
    CertifyMismatch,
    ChangeIdInvalid,
    CutoverError,
    DeltaFormatUnknown,
    DigestMapInvalid,
    HostApiError,
    Interrupted,
    LabError,
    LicenseRestricted,
    LocalDiskFull,
    MacMismatch,
    NicNotConnected,
    NoSpaceLeft,
    OperationError,
    PowerError,
    PowerOnQuestion,
    ProbeFailed,
    SnapshotError,
    TimeoutExpired,
    ToolsUnavailable,
    TransportError,
    VimCmdError,
    VimCmdParseError,
)
from .os_errors import (
    PartialWrite,
)
from .preflight import (
    ChangeTrackingOff,
    CodecUnavailable,
    CutoverNoGo,
    DestinationExists,
    DiskChainError,
    DiskMismatch,
    HostNotPrepared,
    IdentityConflict,
    InsufficientSpace,
    MigrationClaimed,
    PreflightError,
    StateCorrupt,
    StraySnapshots,
    UnsupportedDisk,
    VmMoved,
    WorkspaceMismatch,
)

__all__ = [
    "AgentError",
    "AgentFileUnsafe",
    "AuthenticationError",
    "BobMayHaveServed",
    "CertificateError",
    "CertifyMismatch",
    "ChangeIdInvalid",
    "ChangeMismatch",
    "ChangeTrackingOff",
    "CodecUnavailable",
    "CutoverError",
    "CutoverNoGo",
    "DatastoreNotFound",
    "DeltaFormatUnknown",
    "DestinationExists",
    "DigestMapInvalid",
    "DiskChainError",
    "DiskMismatch",
    "HostApiError",
    "HostKeyError",
    "HostNotFound",
    "HostNotPrepared",
    "IdentityConflict",
    "InputError",
    "InsufficientSpace",
    "Interrupted",
    "LabError",
    "LicenseRestricted",
    "LocalDiskFull",
    "MacMismatch",
    "MigrationClaimed",
    "MigrationFinished",
    "NicNotConnected",
    "NoSpaceLeft",
    "NotFoundError",
    "NotVsphereEndpoint",
    "OperationError",
    "ParameterError",
    "PartialWrite",
    "PermissionDenied",
    "PowerError",
    "PowerOnQuestion",
    "PreflightError",
    "ProbeFailed",
    "RollbackRefused",
    "SnapshotError",
    "SshHostUnreachable",
    "StateCorrupt",
    "StraySnapshots",
    "TimeoutExpired",
    "ToolsUnavailable",
    "TransportError",
    "UnsafeShellArgument",
    "UnsupportedDisk",
    "VimCmdError",
    "VimCmdParseError",
    "VmAmbiguous",
    "VmMoved",
    "VmNotFound",
    "VmigrateError",
    "WaveFileError",
    "WaveStateCorrupt",
    "WorkspaceMismatch",
]
