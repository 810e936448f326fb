"""Bad input: the operator's input is wrong, detected before any change (exit 2)."""

from __future__ import annotations

from .base import VmigrateError


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



class RollbackRefused(InputError):
    """A rollback would lose data the operator has not agreed to lose."""

    default_hint = "pass --yes-lose-bob-writes if the writes made on the new VM may be lost"



class UnsafeShellArgument(InputError):
    """A name that cannot be passed safely to a command on an ESXi host's shell."""

    default_hint = "rename it without control characters (newline, tab, NUL)"



class WaveFileError(ParameterError):
    """A wave file is malformed: ``problems`` holds one line per error (all of them)."""

    default_hint = "fix the wave file and run again"



class WaveStateCorrupt(InputError):
    """A wave's state file is torn, edited or of a newer version."""

    default_hint = "restore it from a backup, or move the wave folder aside to start over"



class KeeperUnsafe(InputError):
    """The connection keeper's folder or socket is not this user's own (owner, mode)."""

    default_hint = ("remove it (vmigrate makes its own folder, owned by you, mode 0700), or "
                    "set XDG_RUNTIME_DIR to your own runtime folder, then run again")
