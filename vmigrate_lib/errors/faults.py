"""Faults during work: the recorded state lets a re-run resume (exit 1)."""

from __future__ import annotations

from .base import VmigrateError


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



class Interrupted(OperationError):
    exit_code = 130
    default_hint = "the run was interrupted; a re-run resumes from the recorded state"



class KeeperError(OperationError):
    """The connection keeper did not start, refused a request, or is not there."""

    default_hint = "see the keeper's log beside its socket; commands connect directly meanwhile"
