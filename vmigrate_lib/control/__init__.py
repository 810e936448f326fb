"""Control plane: the Host interface and its implementations."""

from .host import (
    ALL_ALLOCATED,
    CBT_GRAIN,
    VMIGRATE_SNAPSHOT_PREFIX,
    DiskInfo,
    Host,
    HostCheck,
    PowerState,
    SnapshotInfo,
    VmInfo,
)

__all__ = [
    "ALL_ALLOCATED",
    "CBT_GRAIN",
    "VMIGRATE_SNAPSHOT_PREFIX",
    "DiskInfo",
    "Host",
    "HostCheck",
    "PowerState",
    "SnapshotInfo",
    "VmInfo",
]
