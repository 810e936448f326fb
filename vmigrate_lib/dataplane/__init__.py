"""Data plane: datastore access through a small stdlib-only agent."""

from .datastore import BlockDigest, Chunk, Datastore, ExtentWriter, FileStat

__all__ = ["BlockDigest", "Chunk", "Datastore", "ExtentWriter", "FileStat", "open_local_datastore"]


def open_local_datastore(name: str, root: str) -> Datastore:
    """A datastore whose folder is on this machine, served by a local agent process."""
    from .client import AgentDatastore
    from .transport import LocalTransport

    return AgentDatastore(name, LocalTransport(root))
