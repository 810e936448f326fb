"""Copy extents from a frozen source file to a destination file, with checkpoints.

The source agent reads, skips holes and turns zero blocks into holes; this
process relays frames to the destination agent.  Every ``checkpoint_bytes`` the
destination makes its writes durable and acknowledges them; the offset reached
is handed to ``on_checkpoint`` so that a killed run resumes from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..dataplane.datastore import Datastore
from ..extents import Extent, total


@dataclass
class CopyStats:
    bytes_planned: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0  #: data bytes carried (holes cost a frame header only)
    bytes_zero: int = 0
    extents: int = 0
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return self.bytes_planned / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: CopyStats) -> None:
        self.bytes_planned += other.bytes_planned
        self.bytes_read += other.bytes_read
        self.bytes_sent += other.bytes_sent
        self.bytes_zero += other.bytes_zero
        self.extents += other.extents
        self.seconds += other.seconds


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
    """Copy ``extents`` (sorted, merged) and return what it cost."""
    stats = CopyStats(bytes_planned=total(extents), extents=len(extents))
    if not extents:
        return stats
    t0 = time.monotonic()
    # Direct mode (SSH data plane): the source agent streams to the destination
    # itself and reports acknowledged offsets; None means "relay through here".
    push = getattr(src, "push_extents", None)
    if push is not None:
        pushed = push(src_path, dst, dst_path, extents, checkpoint_bytes=checkpoint_bytes,
                      on_checkpoint=on_checkpoint, on_progress=on_progress)
        if pushed is not None:
            stats.bytes_sent = int(pushed["sent"])
            stats.bytes_zero = int(pushed["holes"])
            stats.bytes_read = int(pushed["read"])
            stats.seconds = time.monotonic() - t0
            return stats
    done = 0
    since_ckpt = 0
    last_ckpt = t0
    reached = 0
    with dst.open_writer(dst_path) as writer:
        for chunk in src.read_extents(src_path, extents):
            writer.write(chunk)
            if chunk.data is None:
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
                writer.checkpoint()
                on_checkpoint(reached)
                since_ckpt = 0
                last_ckpt = now
        writer.close()
    summary = getattr(src, "last_summary", {}) or {}
    stats.bytes_read = int(summary.get("read", stats.bytes_sent))
    if on_checkpoint is not None:
        on_checkpoint(reached)
    stats.seconds = time.monotonic() - t0
    return stats
