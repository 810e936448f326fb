"""Block digests on both sides, compared: hash-compare sync and certify.

Both agents hash where the data is, at the same time (each is its own process);
the client only compares digests in lockstep, so memory stays constant whatever
the disk size.  A hash-compare cycle may instead compare the source with the
destination's digests remembered from the last committed cycle
(:mod:`.digestmap`): then only the source is read.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..control.host import DiskInfo
from ..dataplane.datastore import BlockDigest, Datastore
from ..errors import AgentError, DigestMapInvalid
from ..extents import Extent
from .digestmap import DigestMap, DigestStore, MapKey

if TYPE_CHECKING:
    from .context import Migration

#: Preference when both sides offer several: fast first, then stdlib fallbacks.
PREFERENCE = ("xxh3_128", "blake3", "sha1", "sha256", "blake2b", "md5")


def pick_algorithm(a: Datastore, b: Datastore, wanted: str = "auto") -> str:
    """The best hash both agents offer (or the operator's choice, if both have it)."""
    common = set(a.algorithms()) & set(b.algorithms())
    if wanted != "auto":
        if wanted not in common:
            raise AgentError(
                f"hash algorithm {wanted} is not available on both sides",
                hint=f"choose one of {', '.join(sorted(common))} or 'auto'",
                algorithm=wanted,
            )
        return wanted
    # the accelerators first, then the source agent's stdlib digests, fastest first as
    # it measured them at start (the fixed order last, for an agent that did not rank)
    for name in (*PREFERENCE[:2], *a.algorithms(), *PREFERENCE):
        if name in common:
            return name
    raise AgentError("the two agents share no hash algorithm", algorithms=sorted(common))


@dataclass
class CompareResult:
    algorithm: str
    block_size: int
    blocks: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0
    mismatches: list[Extent] = field(default_factory=list)
    source_digest: str = ""
    dest_digest: str = ""

    @property
    def identical(self) -> bool:
        return not self.mismatches and self.source_digest == self.dest_digest

    def mismatch(self, offset: int, length: int) -> None:
        """Record a differing block, merged with the one before when adjacent."""
        last = self.mismatches[-1] if self.mismatches else None
        if last is not None and last.end == offset:
            self.mismatches[-1] = Extent(last.start, last.length + length)
        else:
            self.mismatches.append(Extent(offset, length))

    def summary(self) -> dict[str, object]:
        return {
            "result": "identical" if self.identical else "MISMATCH",
            "algorithm": self.algorithm,
            "block_size": self.block_size,
            "blocks": self.blocks,
            "bytes": self.bytes_hashed,
            "seconds": round(self.seconds, 3),
            "mismatched_blocks": len(self.mismatches),
            "mismatched_bytes": sum(e.length for e in self.mismatches),
            "source_digest": self.source_digest,
            "dest_digest": self.dest_digest,
        }


def compare(
    src: Datastore,
    src_path: str,
    dst: Datastore,
    dst_path: str,
    *,
    block_size: int,
    algorithm: str,
    size: int,
    extents: Iterable[Extent] | None = None,
    on_progress: Callable[[int], None] | None = None,
    keep: bytearray | None = None,
    src_digests: Iterable[BlockDigest] | None = None,
    dst_digests: Iterable[BlockDigest] | None = None,
) -> CompareResult:
    """Digest both files block by block and list the blocks that differ.

    The per-side root digest is SHA-256 over the ordered block digests, so the
    evidence carries one value per disk that either side can recompute.
    Without ``extents`` both sides digest ``[0, size)``: the disk's configured
    capacity, not the file's length (a flat file can be longer than its disk
    after a crash between growing the file and saving the configuration).
    ``keep`` collects the source's block digests in order (a map to remember).
    ``src_digests``: the source's digests taken as the copy streamed it (not read again);
    ``dst_digests``: the destination's, read back from what it wrote during the copy.
    """
    ext = [Extent(0, size)] if extents is None else list(extents)
    result = CompareResult(algorithm=algorithm, block_size=block_size)
    t0 = time.monotonic()
    root_a, root_b = hashlib.sha256(), hashlib.sha256()
    stream_a = (iter(src_digests) if src_digests is not None
                else src.hash_blocks(src_path, block_size, algorithm, ext))
    stream_b = (iter(dst_digests) if dst_digests is not None
                else dst.hash_blocks(dst_path, block_size, algorithm, ext))
    try:
        for da in stream_a:
            db = next(stream_b, None)
            if db is None or (db.offset, db.length) != (da.offset, da.length):
                raise AgentError(
                    "the two sides cut different blocks (disk sizes differ?)",
                    source_path=src_path,
                    dest_path=dst_path,
                    offset=da.offset,
                )
            root_a.update(da.digest)
            root_b.update(db.digest)
            if keep is not None:
                keep += da.digest
            result.blocks += 1
            result.bytes_hashed += da.length
            if da.digest != db.digest:
                result.mismatch(da.offset, da.length)
            if on_progress is not None and result.blocks % 256 == 0:
                on_progress(result.bytes_hashed)
        if next(stream_b, None) is not None:
            raise AgentError("the destination has more blocks than the source", dest_path=dst_path)
    finally:
        for stream in (stream_a, stream_b):  # end abandoned streams (resets the agent)
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    result.seconds = time.monotonic() - t0
    result.source_digest = root_a.hexdigest()
    result.dest_digest = root_b.hexdigest()
    if on_progress is not None:
        on_progress(result.bytes_hashed)
    return result


def compare_remembered(
    src: Datastore,
    src_path: str,
    remembered: DigestMap,
    *,
    on_progress: Callable[[int], None] | None = None,
    keep: bytearray | None = None,
) -> CompareResult:
    """The source's block digests against the destination's remembered ones: the
    destination is not read.  Same result shape and roots as :func:`compare`."""
    key = remembered.key
    result = CompareResult(algorithm=key.algorithm, block_size=key.block)
    t0 = time.monotonic()
    root_a = hashlib.sha256()
    stream = src.hash_blocks(src_path, key.block, key.algorithm, [Extent(0, key.size)])
    try:
        for i, da in enumerate(stream):
            if i >= key.blocks() or da.offset != i * key.block:
                raise AgentError("the source cut other blocks than the remembered map",
                                 source_path=src_path, offset=da.offset)
            root_a.update(da.digest)
            if keep is not None:
                keep += da.digest
            result.blocks += 1
            result.bytes_hashed += da.length
            if da.digest != remembered.digest(i):
                result.mismatch(da.offset, da.length)
            if on_progress is not None and result.blocks % 256 == 0:
                on_progress(result.bytes_hashed)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if result.blocks != key.blocks():
        raise AgentError(f"the source has {result.blocks} blocks, the map {key.blocks()}",
                         source_path=src_path)
    result.seconds = time.monotonic() - t0
    result.source_digest = root_a.hexdigest()
    result.dest_digest = remembered.root()
    if on_progress is not None:
        on_progress(result.bytes_hashed)
    return result


@dataclass
class HashOutcome:
    """A disk's hash-compare: the result, and whether the destination was read."""

    result: CompareResult
    dest_read: bool
    why_read: str = ""  #: why the remembered digests could not stand for the destination


def hash_compare_disk(
    m: Migration, disk: DiskInfo, src: Datastore, src_path: str, dst: Datastore, dst_path: str,
    algorithm: str, on_progress: Callable[[int], None] | None = None,
) -> HashOutcome:
    """Hash-compare one disk for a cycle, from the remembered digests when they stand
    for the destination (:mod:`.digestmap`), else reading both sides; then remember
    the source's digests (the destination's once this cycle copied) for this cycle,
    *before* anything is copied: only a commit of this cycle makes them usable."""
    state = m.workspace.state
    cycle = state.in_progress.number if state.in_progress is not None else state.cycles + 1
    want = MapKey(disk.key, src_path, dst_path, algorithm, m.params.sync.hash_block,
                  disk.capacity)
    store = DigestStore(m.workspace.digests_dir)
    ds = state.disks.get(disk.key)
    keep = bytearray()
    remembered: DigestMap | None = None
    why = ""
    try:
        if ds is None or ds.untrusted or ds.recheck:
            raise DigestMapInvalid("the disk's copy is to be proven by reading it")
        remembered = store.load(want, ds.last_cycle)
    except DigestMapInvalid as exc:
        why = exc.message
        m.workspace.journal.append("digest_map_unused", disk=disk.key, reason=why)
    if remembered is not None:
        res = compare_remembered(src, src_path, remembered, on_progress=on_progress, keep=keep)
        outcome = HashOutcome(res, dest_read=False)
    else:
        res = compare(src, src_path, dst, dst_path, block_size=want.block, algorithm=algorithm,
                      size=disk.capacity, on_progress=on_progress, keep=keep)
        outcome = HashOutcome(res, dest_read=True, why_read=why)
    store.save(DigestMap(want, cycle, len(keep) // max(1, res.blocks), bytes(keep)))
    return outcome


def forget_remembered(m: Migration, disk_key: int) -> None:
    """Another path is about to write this destination disk: drop its remembered digests."""
    DigestStore(m.workspace.digests_dir).forget(disk_key)
