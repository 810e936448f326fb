"""Data plane: datastore access through a small stdlib-only agent."""

from .datastore import BlockDigest, Chunk, Datastore, ExtentWriter, FileStat

__all__ = [
    "BlockDigest", "Chunk", "Datastore", "ExtentWriter", "FileStat", "open_local_datastore",
    "open_ssh_datastore",
]


def open_local_datastore(name: str, root: str) -> Datastore:
    """A datastore whose folder is on this machine, served by a local agent process."""
    from .client import AgentDatastore
    from .transport import LocalTransport

    return AgentDatastore(name, LocalTransport(root))


def open_ssh_datastore(name: str, root: str, settings: object) -> Datastore:
    """A datastore folder ``root`` on an SSH host (``settings``: an ``SshSettings``).

    paramiko is imported only here, so local use and the engine never need it.
    """
    from .ssh import open_ssh_datastore as _open
    from .sshconfig import SshSettings

    if not isinstance(settings, SshSettings):
        raise TypeError(f"settings must be SshSettings, not {type(settings).__name__}")
    return _open(name, root, settings)
