"""The data-plane interface: bytes on one datastore, reached through an agent.

The agent runs where the disks are (locally for the lab, over SSH on ESXi) so
that reading, hashing and zero detection happen next to the data; only changed
bytes and digests cross the wire.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ..extents import Extent


@dataclass(frozen=True)
class FileStat:
    size: int  #: apparent size in bytes
    allocated: int  #: bytes really allocated (sparse files use less)
    is_dir: bool = False


class Chunk(NamedTuple):
    """A piece of a disk read by the agent.  ``data is None`` means all zero (a hole)."""

    offset: int
    length: int
    data: bytes | None


class BlockDigest(NamedTuple):
    offset: int
    length: int
    digest: bytes


class ExtentWriter(abc.ABC):
    """A write stream into one disk file; data is durable once acknowledged."""

    @abc.abstractmethod
    def write(self, chunk: Chunk) -> None:
        """Queue one chunk (a hole is written as zeros or punched)."""

    @abc.abstractmethod
    def checkpoint(self) -> int:
        """Flush to stable storage; returns the bytes acknowledged so far."""

    @abc.abstractmethod
    def close(self) -> int:
        """Flush and end the stream; returns the total bytes acknowledged."""

    def __enter__(self) -> ExtentWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """End the stream after an error, without waiting for acknowledgements."""
        try:
            self.close()
        except Exception:
            pass


class Datastore(abc.ABC):
    """One datastore, paths relative to its root (``alice/alice-flat.vmdk``)."""

    name: str

    @abc.abstractmethod
    def free_space(self) -> int: ...

    @abc.abstractmethod
    def stat(self, path: str) -> FileStat | None:
        """``None`` when the path does not exist."""

    @abc.abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abc.abstractmethod
    def makedirs(self, path: str) -> None: ...

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """A small file (config, marker), whole."""

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes, exclusive: bool = False) -> None:
        """A small file, written atomically (temp file + rename)."""

    @abc.abstractmethod
    def create_disk(self, path: str, size: int) -> None:
        """A new sparse disk file; fails if it exists."""

    @abc.abstractmethod
    def grow_disk(self, path: str, size: int) -> None:
        """Extend a disk file sparsely to ``size`` bytes; refuses to shrink, same size is a no-op."""

    @abc.abstractmethod
    def remove(self, path: str) -> None:
        """Remove a file vmigrate itself made."""

    @abc.abstractmethod
    def allocated(self, path: str) -> list[Extent]:
        """Allocated (non-hole) areas of a sparse file."""

    @abc.abstractmethod
    def read_extents(self, path: str, extents: Iterable[Extent]) -> Iterator[Chunk]:
        """Stream the extents; all-zero blocks come back as holes (``data=None``)."""

    @abc.abstractmethod
    def open_writer(self, path: str) -> ExtentWriter: ...

    @abc.abstractmethod
    def hash_blocks(
        self, path: str, block_size: int, algorithm: str, extents: Iterable[Extent] | None = None
    ) -> Iterator[BlockDigest]:
        """Digest of every block (of the extents, or the whole file), in order."""

    @abc.abstractmethod
    def algorithms(self) -> list[str]:
        """Hash algorithms the agent offers, best first."""

    def close(self) -> None:
        """Stop the agent."""

    def __enter__(self) -> Datastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
