"""The exception tree of vmigrate.

Every error carries structured fields and an actionable ``hint`` (what to do
about it), so that the CLI, the runbooks and the journal can show one clear
sentence and record machine-readable details.  Lower layers raise these; foreign
exceptions (OSError, paramiko, pyVmomi, ...) are converted at the boundary with
``raise ... from exc``.

``exit_code`` follows the CLI contract: 2 for bad input caught before any change
(nothing was touched), 1 for a fault during work (state is resumable).
"""

from __future__ import annotations

import os
from typing import Any


class VmigrateError(Exception):
    """Base of all vmigrate errors."""

    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.fields: dict[str, Any] = fields

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def one_line(self) -> str:
        """A single line for a terminal or a journal entry."""
        return " ".join(str(self).split())

    def _render_traceback_(self) -> list[str]:
        """IPython's protocol for an exception that renders its own traceback
        (``InteractiveShell.showtraceback``): in a notebook cell a vmigrate error shows as
        its one line (what is wrong, how to fix it), not 40-60 lines of library frames."""
        return [f"{type(self).__name__}: {self.one_line()}"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "fields": {k: _jsonable(v) for k, v in self.fields.items()},
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


# --- bad input: detected before any change, exit 2 -------------------------------


class InputError(VmigrateError):
    """The operator's input is wrong; nothing has been changed."""

    exit_code = 2


class ParameterError(InputError):
    """A parameter or params file is malformed, unknown or out of range."""

    default_hint = "fix the parameter and run again"


class NotFoundError(InputError):
    """Something the operator named does not exist."""


class MigrationFinished(InputError):
    """A sync or cutover was asked of a workspace whose migration is already cut over."""

    default_hint = ("a finished migration is not synced or cut over again; to migrate the VM "
                    "again, start a new migration in a new workspace")


class ChangeMismatch(InputError):
    """A runbook run names another change than the one the workspace's migration belongs to."""

    default_hint = ("use a new workspace for a new migration, or give continue_change "
                    "= '<the workspace's change>' to continue it under this change")


class VmNotFound(NotFoundError):
    default_hint = "check the VM name (vmigrate lab status lists the lab's VMs)"


class HostNotFound(NotFoundError):
    default_hint = "check the host name and that the host is reachable"


class DatastoreNotFound(NotFoundError):
    default_hint = "check the datastore name on the destination host"


class AuthenticationError(InputError):
    default_hint = "check the user and the credential reference (environment variable or keyring)"


class VmAmbiguous(InputError):
    """A VM name matches more than one VM."""

    default_hint = "name the VM by its inventory path (Datacenter/vm/folder/name) or its UUID"


class CertificateError(InputError):
    """The host's TLS certificate could not be verified."""

    default_hint = (
        "install the host's CA certificate in the system trust store; for a lab host only, "
        "set verify_tls: false"
    )


class PermissionDenied(InputError):
    """The API user lacks a privilege."""

    default_hint = "grant the API user the privilege named in the message, or use another user"


class HostKeyError(AuthenticationError):
    """An SSH host key is unknown, changed, or not the pinned one: never auto-accepted."""

    default_hint = (
        "verify the host's key fingerprint out of band, then add it to known_hosts "
        "or pin it with ssh_fingerprint"
    )


class AgentFileUnsafe(InputError):
    """The agent's folder or file on a host has the wrong owner, mode or content: not run."""

    default_hint = (
        "remove it on the host (vmigrate makes its own folder, owned by the SSH login, "
        "mode 0700), then run again"
    )


class SshHostUnreachable(HostNotFound):
    """No TCP connection to a host's sshd at all (before anything was done there)."""

    default_hint = "check the address and port, that sshd runs there and that no firewall blocks it"


class NotVsphereEndpoint(HostNotFound):
    """The URL answers, but not as a vSphere API (another HTTPS service, or plain HTTP)."""

    default_hint = "give the vCenter or ESXi address, e.g. url: https://vcenter.example.org/sdk"


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


class RollbackRefused(InputError):
    """A rollback would lose data the operator has not agreed to lose."""

    default_hint = "pass --yes-lose-bob-writes if the writes made on the new VM may be lost"


# --- faults during work: state is resumable, exit 1 ------------------------------


class OperationError(VmigrateError):
    """A fault during work; the recorded state lets a re-run resume."""


class ChangeIdInvalid(OperationError):
    """A change id cannot be trusted (reset epoch, unknown id): use hash-compare."""

    default_hint = "vmigrate falls back to hash-compare for this disk"


class SnapshotError(OperationError):
    default_hint = "check the VM's snapshots on the host; a re-run cleans up vmigrate's own snapshot"


class PowerError(OperationError):
    default_hint = "check the VM's power state on the host"


class ToolsUnavailable(PowerError):
    """The guest cannot be asked anything: VMware Tools do not run in it (vSphere's
    ``ToolsUnavailable`` fault of ``ShutdownGuest``)."""

    default_hint = ("start VMware Tools in the guest, or allow a hard power-off "
                    "(cutover.allow_hard_poweroff / --allow-hard-poweroff)")


class PowerOnQuestion(PowerError):
    """The VM stopped at a question while powering on (vSphere ``runtime.question``) that
    vmigrate does not answer on its own.  Fields: ``question`` (id, text, choices)."""

    default_hint = ("read the question on the destination host; fix what it asks about, "
                    "then run vmigrate cutover again")


class NicNotConnected(PowerError):
    """A network adapter of a VM that has just powered on is not connected (e.g. a
    distributed port still bound to another VM).  Fields: ``nics``."""

    default_hint = ("check the adapter's port group and port on the destination host, "
                    "connect it in the vSphere Client, then run vmigrate cutover again")


class MacMismatch(OperationError):
    """A NIC of the registered copy does not have the source's MAC address (the guest
    would see a new NIC and lose its network configuration)."""

    default_hint = ("check the MAC addresses of both VMs in the vSphere Client; a generated "
                    "MAC may have been regenerated on a conflict")


class TimeoutExpired(OperationError):
    default_hint = "the operation took longer than allowed; raise the timeout or check the host"


class AgentError(OperationError):
    """The data-plane agent reported an error or broke the protocol."""

    default_hint = "a re-run resumes from the last acknowledged extent"


class TransportError(AgentError):
    """The connection to an agent was lost."""


class NoSpaceLeft(AgentError):
    default_hint = "free space on the destination datastore, then re-run: it resumes"


class DigestMapInvalid(OperationError):
    """Remembered destination digests that cannot stand for the destination (missing,
    torn, edited, of another cycle): the cycle reads both sides instead, never fails."""

    default_hint = "nothing to do: this cycle reads the destination's digests again"


class DeltaFormatUnknown(AgentError):
    """A snapshot delta file the agent's reader does not understand (magic, version,
    sizes, a table entry): never guessed at, the cycle cannot use it."""

    default_hint = ("vmigrate reads SEsparse (VMFS-6) and vmfsSparse (VMFS-5) deltas as QEMU's "
                    "vmdk driver does; use sync.change_tracking: hash for this VM")


class LocalDiskFull(OperationError):
    """A local file system (workspace, journal, evidence) ran out of space or quota."""

    default_hint = ("free space on the file system that holds the workspace and its evidence "
                    "(df -h), then run the same command again: it resumes from the recorded state")


class LicenseRestricted(OperationError):
    """The host's licence forbids API writes (free ESXi: snapshot, power, reconfigure)."""

    default_hint = (
        "the free ESXi licence refuses API writes: set the host's type to esxi (vim-cmd "
        "over SSH, works whatever the licence: examples/esxi.yaml), or license the host"
    )


class HostApiError(OperationError):
    """The vSphere API reported a fault vmigrate has no more specific error for."""

    default_hint = "check the host's task list and events for details, then re-run: it resumes"


class VimCmdError(OperationError):
    """A command of an ``esxi`` host (vim-cmd, vmkfstools) failed or reported a fault."""

    default_hint = "run the command by hand on the host over SSH to see why, then re-run: it resumes"


class VimCmdParseError(VimCmdError):
    """An ESXi command printed something vmigrate does not understand: never guessed at."""

    default_hint = ("this ESXi build prints something vmigrate was not built for: report the "
                    "command and its output (the excerpt) with the host's version (vmware -v)")


class UnsafeShellArgument(InputError):
    """A name that cannot be passed safely to a command on an ESXi host's shell."""

    default_hint = "rename it without control characters (newline, tab, NUL)"


class CertifyMismatch(OperationError):
    default_hint = "re-run certify with --repair to copy the differing blocks again"


class LabError(OperationError):
    """The embedded lab hypervisor failed."""

    default_hint = "vmigrate lab status shows the lab; vmigrate lab down && vmigrate lab up resets it"


class CutoverError(OperationError):
    default_hint = "vmigrate cutover resumes from the recorded step; vmigrate rollback undoes it"


class BobMayHaveServed(CutoverError):
    """A cutover step failed after the new VM had run past the grace period: he may
    have served writes, so nothing rolls back by itself; the operator decides."""

    default_hint = (
        "fix the cause and run vmigrate cutover again to resume, or vmigrate rollback "
        "--yes-lose-bob-writes to go back to the source (writes made on the new VM are lost)"
    )


class ProbeFailed(CutoverError):
    """The new VM is running but a health probe failed; the operator decides."""

    default_hint = (
        "the new VM is running: fix it and run vmigrate cutover again to re-probe, or "
        "vmigrate rollback --yes-lose-bob-writes to go back (writes made on it are lost)"
    )


class WaveFileError(ParameterError):
    """A wave file is malformed: ``problems`` holds one line per error (all of them)."""

    default_hint = "fix the wave file and run again"


class WaveStateCorrupt(InputError):
    """A wave's state file is torn, edited or of a newer version."""

    default_hint = "restore it from a backup, or move the wave folder aside to start over"


class Interrupted(OperationError):
    exit_code = 130
    default_hint = "the run was interrupted; a re-run resumes from the recorded state"


# --- below the boundary: OS errors with details, converted where they are caught -----


class PartialWrite(OSError):
    """A write that stopped part-way (:mod:`vmigrate_lib.atomicfile`): ``written`` of
    ``total`` bytes reached ``filename``.  An :class:`OSError`, so that code catching
    file-system errors still does; the caller turns it into its own error."""

    def __init__(self, err: int, filename: str, written: int, total: int) -> None:
        super().__init__(err, os.strerror(err), filename)
        self.written = written
        self.total = total
