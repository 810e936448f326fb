"""The datastore over SSH: compression, bounded reconnects, resumable streams."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from ...extents import Extent
from ..agent import protocol as proto
from ..agentchannel import AgentChannel
from ..client import AgentDatastore
from ..datastore import (
    BlockDigest,
    Chunk,
    Datastore,
    ExtentWriter,
    PathCheck,
    Peeked,
    StreamSummary,
    TransferMode,
    TransferModes,
)
from ..retry import RetryPolicy
from ..streamsummary import SUMMED, add_summary, summary_of
from .direct import DirectMode, check_modes
from .transport import SshTransport
from .writer import ResilientWriter

#: Operations safe to repeat after a lost connection (no effect, or the same effect).
IDEMPOTENT_OPS = frozenset(
    {"ping", "statfs", "stat", "listdir", "makedirs", "read_file", "allocated", "remove",
     "grow_disk", "probe_peer"}
)


def _remaining(extents: list[Extent], k: int, offset: int, end: int) -> tuple[list[Extent], int]:
    """Cut what a stream has delivered ([offset, end) of the extent at or after k) off the list."""
    while k < len(extents) and not (extents[k].start <= offset < extents[k].start + extents[k].length):
        k += 1
    if k == len(extents):
        return extents, k
    e = extents[k]
    e_end = e.start + e.length
    if end >= e_end:
        return extents, k + 1
    extents[k] = Extent(end, e_end - end)
    return extents, k


_END = object()


def _prefetch(gen: Iterator[Chunk], limit: int) -> Iterator[Chunk]:
    """Run ``gen`` in a thread, up to ``limit`` bytes ahead of the consumer.

    In relay mode this overlaps receiving from the source with sending to the
    destination (socket waits and crypto release the GIL).  Exceptions travel
    to the consumer; closing the consumer stops the thread.
    """
    if limit <= 0:
        yield from gen
        return
    import queue

    q: queue.Queue[Any] = queue.Queue()
    room = threading.Semaphore(max(2, limit // (1 << 20)))
    stop = threading.Event()

    def run() -> None:
        try:
            for c in gen:
                while not room.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                q.put(c)
            q.put(_END)
        except BaseException as exc:
            q.put(exc)
        finally:
            if stop.is_set():
                close = getattr(gen, "close", None)
                if close is not None:
                    close()

    t = threading.Thread(target=run, name="vmigrate-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            room.release()
            yield item
    finally:
        stop.set()
        t.join()


class SshAgentDatastore(AgentDatastore):
    """An :class:`AgentDatastore` over SSH with compression, reconnects and direct mode."""

    transport: SshTransport
    prefetch_bytes = 32 * 1024 * 1024  #: read-ahead of a read stream (0: none)

    def __init__(self, name: str, transport: SshTransport) -> None:
        s = transport.settings
        super().__init__(name, transport, AgentChannel(
            name, transport, retry=RetryPolicy.from_settings(s),
            compress=s.compress, compress_level=s.compress_level))
        self.settings = s
        self.direct = DirectMode(self, transport)
        self.direct.direct_ok = transport.conn.direct_ok  # one probe per peer and connection
        self._events_taken = 0  #: how many of ``events`` :meth:`take_events` has handed out

    @property
    def reconnects(self) -> int:
        """Reconnects so far (all streams and requests of this datastore)."""
        return self.channel.reconnects

    @property
    def events(self) -> list[dict[str, Any]]:
        """Reconnects, resumes and the direct-mode decision, for the journal."""
        return self.channel.events

    def take_events(self) -> list[dict[str, Any]]:
        taken = self.channel.events[self._events_taken:]
        self._events_taken += len(taken)
        return [dict(e) for e in taken]

    @property
    def codec(self) -> str | None:
        """The compression chosen at the last handshake."""
        return self.channel.codec

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """One request; an idempotent one is repeated after a lost connection."""
        once = super().call
        if op not in IDEMPOTENT_OPS and not (op == "write_file" and not args.get("exclusive")):
            out = once(op, **args)
        else:
            out = self.channel.retrying(f"{op} lost its connection").call(lambda: once(op, **args))
        self.transport.conn.agent_ran()  # it answered: its file is installed and checked
        return out

    def peek(self, paths: Sequence[str], read: Sequence[str] = ()) -> dict[str, Peeked]:
        """In one round trip (see :meth:`AgentDatastore.peek`), repeated after a lost
        connection (stat and read change nothing)."""
        once = super().peek
        out = self.channel.retrying("peek lost its connection").call(lambda: once(paths, read))
        self.transport.conn.agent_ran()
        return out

    def close(self) -> None:
        """Say goodbye to the agent (if it is still there), then give the SSH connection
        back (a shared one closes with its last user)."""
        try:
            super().close()
        finally:
            self.transport.shutdown()

    # --- resumable streams ------------------------------------------------------------
    def read_extents(self, path: str, extents: Iterable[Extent]) -> Iterator[Chunk]:
        """Read stream that resumes after its last delivered chunk when the connection breaks."""
        remaining = [Extent(e.start, e.length) for e in extents]
        k = 0
        summary: dict[str, Any] = dict.fromkeys(SUMMED, 0)
        retry = self.channel.retrying("read stream lost its connection")
        for attempt in retry:
            if attempt.retried_after is not None:
                self.channel.events.append({"event": "resume", "what": "read", "path": path,
                                            "extents_left": len(remaining) - k})
                self.streamed = None  # cut differently after a resume: certify reads again
            got = {"sent": 0, "holes": 0}
            with attempt:
                for chunk in _prefetch(super().read_extents(path, remaining[k:]), self.prefetch_bytes):
                    yield chunk
                    got["holes" if chunk.hole else "sent"] += chunk.length
                    remaining, k = _remaining(remaining, k, chunk.offset, chunk.offset + chunk.length)
                    retry.progressed()
                add_summary(summary, self.channel.summary)
                self.channel.summary = summary
                return
            # the connection was lost: count what this stream delivered
            summary["sent"] += got["sent"]
            summary["holes"] += got["holes"]
            summary["read"] += got["sent"]

    def hash_blocks(
        self, path: str, block_size: int, algorithm: str, extents: Iterable[Extent] | None = None
    ) -> Iterator[BlockDigest]:
        """Hash stream that resumes after its last delivered block when the connection breaks."""
        if extents is None:
            st = self.stat(path)
            remaining = [Extent(0, st.size)] if st is not None else []
            if st is None:  # let the agent report the missing file
                yield from super().hash_blocks(path, block_size, algorithm, None)
                return
        else:
            remaining = [Extent(e.start, e.length) for e in extents]
        k = 0
        retry = self.channel.retrying("hash stream lost its connection")
        for attempt in retry:
            with attempt:
                for d in super().hash_blocks(path, block_size, algorithm, remaining[k:]):
                    yield d
                    remaining, k = _remaining(remaining, k, d.offset, d.offset + d.length)
                    retry.progressed()

    def open_writer(self, path: str) -> ExtentWriter:
        return ResilientWriter(self.channel, path)

    # --- direct mode (see .direct) -------------------------------------------------
    def probe_direct(self, dst: Datastore) -> tuple[bool, str]:
        """Can this host reach ``dst``'s host over SSH and start its agent there?"""
        return self.direct.probe(dst)

    def transfer_modes(self, dst: Datastore) -> TransferModes | None:
        """The requested mode and which data paths to ``dst`` work (None when ``dst``
        is not reached over SSH: then bytes are relayed, there is no choice).

        Changes nothing (the direct probe starts and stops an agent on the peer).  With
        relay asked for, direct mode is not probed: its answer would change nothing.
        """
        if not isinstance(dst, SshAgentDatastore):
            return None
        probe = self.settings.mode != "relay"
        checks = {c.mode: PathCheck(c.ok, c.detail, probed=probe)
                  for c in check_modes(self, dst, probe=probe)}
        if self.settings.mode == "auto":  # the cycles use this answer (no second probe)
            self.direct.direct_ok[(dst.settings.host, dst.settings.port)] = checks["direct"].ok
            self.channel.events.append({"event": "mode", "why": checks["direct"].detail,
                                        "mode": "direct" if checks["direct"].ok else "relay"})
        return TransferModes(
            requested=cast(TransferMode, self.settings.mode), relay=checks["relay"], direct=checks["direct"],
            direct_hint="give the source host a route to the destination (source.ssh_direct_key, "
            "source.ssh_direct_known_hosts: paths on the source host), or use ssh_mode relay "
            "or auto",
        )

    def compression_check(self, dst: Datastore) -> PathCheck | None:
        """Each side's requested codec against what its agent (and this machine) offers;
        in direct mode the source's codec against the destination's agent too."""
        sides = [(self, self.settings.compress)]
        if isinstance(dst, SshAgentDatastore):
            sides.append((dst, dst.settings.compress))
        if not any(want for _ds, want in sides):
            return None
        words = []
        for ds, want in sides:
            if not want:
                continue
            ds.channel.connect()
            if ds.channel.codec_error is not None:
                return PathCheck(False, ds.channel.codec_error.message)
            offered = ds.hello.get("compression", [])
            words.append(f"{ds.name}: {want} -> {codec_name(ds.hello, ds.codec)} "
                         f"(agent offers {', '.join(offered)})")
        peer = dst if isinstance(dst, SshAgentDatastore) and self.direct.use_for(dst) else None
        direct = peer is not None
        how = "relay: compressed frames are forwarded as they are"
        if peer is not None and self.settings.compress:
            peer.channel.connect()
            theirs = peer.hello.get("compression", [])
            if self.settings.compress != "auto" and self.settings.compress not in theirs:
                return PathCheck(False, f"ssh_compress {self.settings.compress} is requested "
                                 f"for direct mode but the agent of {peer.name} offers only "
                                 f"{', '.join(theirs)}")
            mine = self.hello.get("compression", [])
            run = (self.settings.compress if self.settings.compress != "auto" else
                   next((c for c in proto.PREFERENCE if c in mine and c in theirs), "zlib"))
            how = (f"direct: the source agent compresses with {codec_name(self.hello, run)}, "
                   f"{peer.name}'s agent decodes with {codec_name(peer.hello, run)}")
        elif direct:
            how = "direct: the source agent compresses"
        return PathCheck(True, "; ".join(words) + f"; {how}, off where it does not pay")

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
        """Direct mode when in use for this pair (see :class:`DirectMode`), else None."""
        pushed = self.direct.push(src_path, dst, dst_path, extents,
                                  checkpoint_bytes=checkpoint_bytes, on_checkpoint=on_checkpoint,
                                  on_progress=on_progress)
        return None if pushed is None else summary_of(pushed)


def codec_name(hello: dict[str, Any], codec: str | None) -> str:
    """A codec as the preflight line and the journal name it: ``zstd-lib`` or ``zstd-bin``
    where the agent runs it through its host's library or tool (no zstandard module)."""
    if not codec:
        return "none"
    how = hello.get("codec_impl", {}).get(codec)
    return f"{codec}-{how}" if how in ("lib", "bin") else codec
