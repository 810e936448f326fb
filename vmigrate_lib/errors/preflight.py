"""Preflight: a precondition of the migration does not hold; nothing changed (exit 2)."""

from __future__ import annotations

from .bad_input import InputError


class PreflightError(InputError):
    """A precondition of the migration does not hold."""



class CodecUnavailable(PreflightError):
    """A requested compression codec is missing on a side of the stream (never a silent
    fallback to another codec or to none)."""

    default_hint = "set ssh_compress to auto (the fastest codec both ends have) or zlib, or off"



class DestinationExists(PreflightError):
    default_hint = (
        "choose another destination name, or remove the existing VM at the destination "
        "yourself if it is not needed"
    )



class IdentityConflict(PreflightError):
    """Bob's name, or the source's retired name, is taken where it would be registered
    (e.g. one vCenter for both hosts and no ``dest_name``)."""

    default_hint = ("set dest_name to a new name (cutover.identity: new-name), or let the "
                    "cutover rename the source and give Bob its name "
                    "(cutover.identity: retire-source)")



class MigrationClaimed(PreflightError):
    """Another vmigrate migration has claimed the source VM (one migration per source)."""

    default_hint = "finish or abandon the other migration, or release its stale claim"



class InsufficientSpace(PreflightError):
    default_hint = "free space on the destination datastore or choose another datastore"



class DiskMismatch(PreflightError):
    default_hint = (
        "the destination disk does not match the source; start a new workspace "
        "or remove the stale destination disk"
    )



class StraySnapshots(PreflightError):
    default_hint = "remove or consolidate the other snapshots first (they are not vmigrate's)"



class DiskChainError(PreflightError):
    """The VM runs on a delta disk (a snapshot chain), so its flat base file is stale."""

    default_hint = (
        "consolidate the VM's disks first (vSphere Client: Snapshots > Consolidate), "
        "or let vmigrate run ConsolidateVMDisks_Task before its first snapshot "
        "(source.allow_consolidate: true)"
    )



class UnsupportedDisk(PreflightError):
    """A disk vmigrate cannot copy from a snapshot's frozen flat file: independent
    (never in a snapshot), multi-writer (cannot be snapshotted), an RDM (a LUN, not a
    file), or a vSAN/vVol object (no -flat.vmdk on a file system)."""

    default_hint = ("change the disk to a persistent, unshared flat VMDK on a VMFS or NFS "
                    "datastore (see docs/real-hosts.md), or move the VM another way")



class HostNotPrepared(PreflightError):
    """A host lacks what the migration needs from it: an API privilege, the SSH
    service, a firewall rule, support for the VM's hardware version."""

    default_hint = "prepare the host as docs/real-hosts.md lists, then run preflight again"



class VmMoved(PreflightError):
    """The VM no longer runs on the configured source host (DRS, vMotion)."""

    default_hint = ("set source.host to the host the VM runs on, or move it back (set its DRS "
                    "automation to manual for the migration)")



class ChangeTrackingOff(PreflightError):
    default_hint = "enable change tracking, or allow the hash-compare fallback"



class WorkspaceMismatch(PreflightError):
    default_hint = "use the workspace that belongs to this migration, or a new empty folder"



class StateCorrupt(WorkspaceMismatch):
    """``state.json`` is empty, torn, of an unknown version, or has a field of the wrong type."""



class CutoverNoGo(PreflightError):
    """The cutover's go/no-go said no; nothing was changed."""

    default_hint = "sync again (vmigrate sync --until-converged), or pass --force to override"

