"""Copy extents from a frozen source file to a destination file, with checkpoints.

The source agent reads, skips holes and turns zero blocks into holes; this
process relays frames to the destination agent.  Every ``checkpoint_bytes`` the
destination makes its writes durable and acknowledges them; the offset reached
is handed to ``on_checkpoint`` so that a killed run resumes from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..dataplane.datastore import BlockDigest, Datastore, StreamSummary
from ..extents import Extent, total


@dataclass
class StreamedDigests:
    """The source's block digests of the extents a copy carried, as it streamed them, and
    the destination's, read back from what it wrote."""

    algorithm: str
    block: int
    extents: list[Extent] | None  #: None: the whole disk (a seed; gaps are zeros)
    digests: list[BlockDigest]
    #: the destination's digests of the same blocks, read back as it wrote them (None:
    #: not taken; certify reads the destination)
    dest: list[BlockDigest] | None = None


@dataclass
class CopyStats:
    bytes_planned: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0  #: data bytes carried (holes cost a frame header only)
    bytes_zero: int = 0
    extents: int = 0
    seconds: float = 0.0
    bytes_wire: int = 0  #: bytes the source agent put on the wire (0: not counted)
    codec: str = ""  #: the compression that ran ("" none)
    frames_packed: int = 0  #: DATA frames sent compressed
    frames_raw: int = 0  #: DATA frames sent as they are (compression off or not paying)
    packer: dict[str, int] = field(default_factory=dict)  #: StreamSummary.packer


def copy_extents(
    src: Datastore,
    src_path: str,
    dst: Datastore,
    dst_path: str,
    extents: Sequence[Extent],
    *,
    checkpoint_bytes: int = 64 * 1024 * 1024,
    checkpoint_seconds: float = 5.0,
    on_checkpoint: Callable[[int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CopyStats:
    """Copy ``extents`` (sorted, merged) and return what it cost.

    The source datastore streams to the destination itself when it can
    (:meth:`Datastore.push_extents`); otherwise this process relays."""
    stats = CopyStats(bytes_planned=total(extents), extents=len(extents))
    if not extents:
        return stats
    t0 = time.monotonic()
    pushed = src.push_extents(src_path, dst, dst_path, extents, checkpoint_bytes=checkpoint_bytes,
                              on_checkpoint=on_checkpoint, on_progress=on_progress)
    if pushed is not None:
        stats.bytes_sent, stats.bytes_zero, stats.bytes_read = pushed.sent, pushed.holes, pushed.read
        _wire(stats, pushed)
    else:
        _relay(src, src_path, dst, dst_path, extents, stats, checkpoint_bytes=checkpoint_bytes,
               checkpoint_seconds=checkpoint_seconds, on_checkpoint=on_checkpoint,
               on_progress=on_progress)
    stats.seconds = time.monotonic() - t0
    return stats


def _relay(
    src: Datastore,
    src_path: str,
    dst: Datastore,
    dst_path: str,
    extents: Sequence[Extent],
    stats: CopyStats,
    *,
    checkpoint_bytes: int,
    checkpoint_seconds: float,
    on_checkpoint: Callable[[int], None] | None,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """Read from the source's agent, write into the destination's, through this process;
    the destination acknowledges durable writes every ``checkpoint_bytes`` (or seconds).
    A checkpoint is recorded once acknowledged; the copy goes on meanwhile
    (:meth:`ExtentWriter.checkpoint_behind`: the link is not idle while the destination
    makes the last ``checkpoint_bytes`` durable)."""
    done = since_ckpt = reached = 0
    last_ckpt = time.monotonic()
    with dst.open_writer(dst_path) as writer:
        for chunk in src.read_extents(src_path, extents):
            writer.write(chunk)
            if chunk.hole:  # (a relayed compressed chunk is not decoded to know)
                stats.bytes_zero += chunk.length
            else:
                stats.bytes_sent += chunk.length
            done += chunk.length
            since_ckpt += chunk.length
            reached = chunk.offset + chunk.length
            if on_progress is not None:
                on_progress(done, stats.bytes_planned)
            now = time.monotonic()
            if on_checkpoint is not None and (
                since_ckpt >= checkpoint_bytes or now - last_ckpt >= checkpoint_seconds
            ):
                for mark in writer.checkpoint_behind(reached):
                    on_checkpoint(mark)
                since_ckpt = 0
                last_ckpt = now
        writer.close()
    summary = src.last_read_summary()
    stats.bytes_read = summary.read if summary is not None else stats.bytes_sent
    if summary is not None:
        _wire(stats, summary)
    if on_checkpoint is not None:
        on_checkpoint(reached)


def _wire(stats: CopyStats, summary: StreamSummary) -> None:
    """What the source agent says went on the wire, and with which codec."""
    stats.bytes_wire, stats.codec = summary.wire, summary.codec
    stats.frames_packed, stats.frames_raw = summary.packed, summary.raw
    stats.packer = dict(summary.packer)
