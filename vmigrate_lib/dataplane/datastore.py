"""The data-plane interface: bytes on one datastore, reached through an agent.

The agent runs where the disks are (locally for the lab, over SSH on ESXi) so
that reading, hashing and zero detection happen next to the data; only changed
bytes and digests cross the wire.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..errors import VmigrateError
from ..extents import Extent
from ..modes import DiskFormat, SshMode
from .deltas import DeltaExtents

log = logging.getLogger("vmigrate.dataplane")


@dataclass(frozen=True)
class FileStat:
    size: int  #: apparent size in bytes
    allocated: int  #: bytes really allocated (sparse files use less)
    is_dir: bool = False
    #: last modification (st_mtime_ns); None where the data plane does not say
    mtime_ns: int | None = None


class Chunk:
    """A piece of a disk read by the agent.  ``data is None`` means all zero (a hole).

    ``packed``: the compressed payload as the source agent sent it and its frame flags
    (None: it came uncompressed); a relay forwards it untouched where the destination
    speaks it.  Such a chunk may come with ``decode`` instead of its data (its length read
    from the frame): ``data`` decodes it at its first use, so a relay that forwards the
    frame never decodes it (:attr:`hole` tells a hole without decoding)."""

    __slots__ = ("_data", "_decode", "length", "offset", "packed")

    def __init__(self, offset: int, length: int, data: bytes | None,
                 packed: tuple[bytes, int] | None = None,
                 decode: Callable[[], bytes] | None = None) -> None:
        self.offset, self.length, self.packed = offset, length, packed
        self._data, self._decode = data, decode

    @property
    def hole(self) -> bool:
        """All zero: nothing to decode nor to write but a hole."""
        return self._data is None and self._decode is None

    @property
    def data(self) -> bytes | None:
        if self._decode is not None:
            self._data, self._decode = self._decode(), None
        return self._data

    def __repr__(self) -> str:
        what = "hole" if self.hole else "packed" if self.packed else "data"
        return f"Chunk({self.offset}, {self.length}, {what})"


class BlockDigest(NamedTuple):
    offset: int
    length: int
    digest: bytes


@dataclass(frozen=True)
class StreamSummary:
    """What one read or push stream cost, as the source agent counted it."""

    sent: int = 0  #: data bytes carried
    holes: int = 0  #: bytes carried as holes (a frame header each)
    read: int = 0  #: bytes the source agent read from the disk
    wire: int = 0  #: bytes on the wire from the source agent; 0 when not counted
    codec: str = ""  #: the compression the source agent ran ("" none)
    packed: int = 0  #: DATA frames sent compressed
    raw: int = 0  #: DATA frames sent as they are (compression off or not paying)
    #: why chunks went as they are and how the packer adapted: ``no_gain``, ``off_for_rate``,
    #: ``ldm_off`` (chunks joined without long-distance matching while the codec was
    #: behind), ``stream`` (chunks sent through a direct push's one zstd stream) (counts),
    #: ``level_max`` (zstd), ``span_max`` (the longest joined frame, bytes)
    packer: dict[str, int] = field(default_factory=dict)


#: The largest file :meth:`Datastore.peek` reads (claims, markers and descriptors are a
#: few hundred bytes; a disk named where a descriptor was expected is never read whole).
PEEK_LIMIT = 64 * 1024

#: How disk bytes travel between two datastores: through this machine, host to host,
#: or direct when it works, else relay (the params' ``ssh_mode`` words).
TransferMode = SshMode


@dataclass(frozen=True)
class StorageProbe:
    """What the datastore's file system was found to do (the agent's probe at start):
    each None when it could not be probed."""

    seek_data: bool | None  #: SEEK_DATA skips holes (else every area reads as data)
    punch_hole: bool | None  #: punching a hole frees space and reads back zeros
    python: str = ""  #: the agent's Python version on that host
    vmkfstools: bool = False  #: disks can be created provisioned (thick) as the source's
    detail: str = ""  #: why it could not be probed

    def describe(self) -> str:
        """One phrase for preflight."""
        def yn(v: bool | None) -> str:
            return "unknown" if v is None else "yes" if v else "no"
        text = (f"python {self.python or '?'}, SEEK_DATA {yn(self.seek_data)}, "
                f"hole punching {yn(self.punch_hole)}, vmkfstools {yn(self.vmkfstools)}")
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class PathCheck:
    """Whether one data path works, and why (a sentence for the operator)."""

    ok: bool
    detail: str
    #: False: not tried, because its answer could not change what runs (``detail`` says why)
    probed: bool = True


class Files(Protocol):
    """The reads of a datastore that checks use (a :class:`Datastore`, or what was
    peeked of one)."""

    def stat(self, path: str) -> FileStat | None: ...
    def read_file(self, path: str) -> bytes: ...
    def listdir(self, path: str) -> list[str]: ...


@dataclass(frozen=True)
class Peeked:
    """One path as :meth:`Datastore.peek` found it."""

    stat: FileStat | None  #: None: the path does not exist
    #: the file's bytes when asked for and readable; None: not asked, absent, a folder,
    #: or unreadable (reading it again raises why)
    data: bytes | None = None


class PeekedFiles:
    """A datastore's files as :meth:`Datastore.peek` found them; what was not peeked (or
    was unreadable) is asked of the datastore, after ``before_asking`` (e.g. waiting for
    another thread that still uses the datastore)."""

    def __init__(self, ds: Files, peeked: dict[str, Peeked],
                 before_asking: Callable[[], None] | None = None) -> None:
        self.ds, self.peeked, self.before_asking = ds, peeked, before_asking

    def _ask(self) -> Files:
        if self.before_asking is not None:
            self.before_asking()
        return self.ds

    def stat(self, path: str) -> FileStat | None:
        if path in self.peeked:
            return self.peeked[path].stat
        return self._ask().stat(path)

    def read_file(self, path: str) -> bytes:
        got = self.peeked.get(path)
        if got is not None and got.data is not None:
            return got.data
        return self._ask().read_file(path)  # not peeked, or unreadable: it says why

    def listdir(self, path: str) -> list[str]:
        return self._ask().listdir(path)


@dataclass(frozen=True)
class TransferModes:
    """For preflight: the mode the operator asked for and which data paths work."""

    requested: TransferMode
    relay: PathCheck
    direct: PathCheck
    #: what the operator can do when direct mode is requested and does not work
    #: (in the implementation's own terms, e.g. its settings)
    direct_hint: str = ""


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

    def checkpoint_behind(self, mark: int) -> list[int]:
        """Ask for a checkpoint here, ``mark`` naming this point of the stream, and return
        the marks of the checkpoints acknowledged since the last call, in order.  A writer
        may keep streaming while the destination makes one checkpoint durable (its
        acknowledgement is read at the next call, or by :meth:`close`); this default
        waits for it."""
        self.checkpoint()
        return [mark]

    def __enter__(self) -> ExtentWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """End the stream after an error, without waiting for acknowledgements (a failure
        to close is logged: the first error is the one raised)."""
        try:
            self.close()
        except Exception as exc:
            log.debug("closing a write stream after an error failed: %s", exc)


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
    def create_disk(self, path: str, size: int, provisioning: DiskFormat = "thin") -> None:
        """A new disk file; fails if it exists.  Provisioned as ``provisioning`` where the
        host can (ESXi: ``vmkfstools -c -d``), else sparse (allocated on write)."""

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

    def peek(self, paths: Sequence[str], read: Sequence[str] = ()) -> dict[str, Peeked]:
        """Every path of ``paths`` and ``read`` stat'ed, and the files of ``read`` read
        (small files: markers, claims, descriptors; one over :data:`PEEK_LIMIT` is not
        read), in as few round trips as the data plane can: one
        request each here; an agent takes them all in one (:class:`AgentDatastore`), which
        is what a check looking at many paths on a far host saves.  Changes nothing."""
        out: dict[str, Peeked] = {}
        for path in dict.fromkeys([*paths, *read]):
            st = self.stat(path)
            data = None
            if path in read and st is not None and not st.is_dir and st.size <= PEEK_LIMIT:
                with contextlib.suppress(VmigrateError):
                    data = self.read_file(path)
            out[path] = Peeked(st, data)
        return out

    # --- optional capabilities: each default says "not supported" -----------------------
    def transfer_modes(self, dst: Datastore) -> TransferModes | None:
        """Which data paths to ``dst`` work and which one is requested; changes nothing.

        None (the default): this datastore offers no choice, bytes are relayed
        through this process and there is nothing to check beforehand."""
        return None

    def stream_digests(self, algorithm: str, block: int, size: int | None = None) -> bool:
        """Arm the next read or push stream to digest the blocks it carries (cut as
        :meth:`hash_blocks` cuts the same extents, or with ``size`` the whole ``[0, size)``
        grid, what it skips counted as zeros), so that a certify need not read the source
        again; False (the default): this datastore cannot."""
        return False

    def streamed_digests(self) -> list[BlockDigest] | None:
        """The armed stream's digests, then disarm; None: none (or the stream resumed)."""
        return None

    def arm_readback(self, algorithm: str, block: int, size: int | None) -> bool:
        """Arm the next write stream to read back and digest the ranges it writes, during
        the copy (``size``: the whole ``[0, size)`` grid), so that certify need not read
        the destination after it; False (the default): this datastore cannot."""
        return False

    def readback_digests(self) -> list[BlockDigest] | None:
        """The armed write stream's read-back digests, then disarm; None: none."""
        return None

    def compression_check(self, dst: Datastore) -> PathCheck | None:
        """For preflight: whether the compression requested for streams to ``dst`` runs on
        both ends, and which codec will; None (the default): no compression to check."""
        return None

    def push_extents(
        self,
        src_path: str,
        dst: Datastore,
        dst_path: str,
        extents: Sequence[Extent],
        *,
        checkpoint_bytes: int,
        on_checkpoint: Callable[[int], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> StreamSummary | None:
        """Stream ``extents`` of ``src_path`` into ``dst`` without this process in the data
        path (the source's agent writes to the destination's itself), reporting each
        offset the destination made durable to ``on_checkpoint``.

        None (the default): not supported for this pair; the caller relays
        (:meth:`read_extents` into ``dst``'s :meth:`open_writer`)."""
        return None

    def delta_extents(self, path: str) -> DeltaExtents | None:
        """The changed grains of a frozen snapshot delta file (SEsparse or vmfsSparse),
        read where it lives; None (the default): this datastore cannot read deltas."""
        return None

    def storage_probe(self) -> StorageProbe | None:
        """What the file system under this datastore does (SEEK_DATA, hole punching,
        provisioned disk creation), for preflight and the space check; None (the
        default) when this data plane cannot say."""
        return None

    def last_read_summary(self) -> StreamSummary | None:
        """What the last :meth:`read_extents` stream cost as the agent counted it
        (bytes read from the disk); None (the default) when it cannot say."""
        return None

    def take_events(self) -> list[dict[str, Any]]:
        """What happened on the way since the last call (reconnects, resumed streams, the
        direct-mode decision), each a small dict with an ``event`` key, for the cycle's
        journal record; none (the default) where the data plane has no such events."""
        return []

    def close(self) -> None:
        """Stop the agent."""

    def __enter__(self) -> Datastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
