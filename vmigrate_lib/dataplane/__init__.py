"""Data plane: datastore access through a small stdlib-only agent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .datastore import BlockDigest, Chunk, Datastore, ExtentWriter, FileStat

if TYPE_CHECKING:  # the type only: importing it at run time is the caller's choice
    from .sshconfig import SshSettings

__all__ = [
    "BlockDigest", "Chunk", "Datastore", "ExtentWriter", "FileStat", "open_local_datastore",
    "open_ssh_datastore",
]


def open_local_datastore(name: str, root: str) -> Datastore:
    """A datastore whose folder is on this machine, served by a local agent process."""
    from .client import AgentDatastore
    from .transport import LocalTransport

    return AgentDatastore(name, LocalTransport(root))


def open_ssh_datastore(name: str, root: str, settings: SshSettings) -> Datastore:
    """A datastore folder ``root`` on an SSH host.

    paramiko is imported only here, so local use and the engine never need it.  A live
    connection keeper for these settings (``vmigrate keep start``, :mod:`.keep`) serves
    the agent when there is one.
    """
    from .keep.place import find

    found = find(settings)
    if found.socket is not None or found.why:
        from .keep.client import open_kept

        kept = open_kept(name, root, settings, found)
        if kept is not None:
            return kept
    from .ssh import open_ssh_datastore as _open

    return _open(name, root, settings)
