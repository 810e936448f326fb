"""A write stream that survives a lost connection by replaying unacknowledged chunks."""

from __future__ import annotations

from ...errors import AgentError, TransportError
from ..agent import protocol as proto
from ..agentchannel import AgentChannel
from ..client import sync_write, take_ack
from ..datastore import Chunk, ExtentWriter


class ResilientWriter(ExtentWriter):
    """A write stream that survives a lost connection by replaying unacknowledged chunks.

    Chunks sent since the last acknowledged checkpoint are kept (``replay_limit`` bytes
    since the last FLUSH sent: beyond that the writer checkpoints by itself).  After
    a reconnect the write stream is reopened and those chunks are written again
    at their offsets; what was acknowledged before is durable and not resent.
    The channel's reconnect bounds and events are the datastore's.
    :meth:`checkpoint_behind` keeps one FLUSH in flight: the chunks go on while the
    destination makes the previous ones durable (its ``fsync``), and that FLUSH's ACK is
    read at the next checkpoint (or at :meth:`close`), long arrived by then.
    """

    def __init__(self, channel: AgentChannel, path: str, replay_limit: int = 64 * 1024 * 1024) -> None:
        self.channel = channel
        self.path = path
        self.replay_limit = replay_limit
        self.pending: list[Chunk] = []
        self.pending_bytes = 0
        self.acked_base = 0  #: bytes acknowledged by streams before the current one
        self.closed = False
        #: reconnects since the last acknowledged checkpoint (a new one counts from one)
        self.retry = channel.retrying("write stream lost its connection")
        self.compressor: proto.Compressor | None = None  #: made at the first compressed chunk
        #: FLUSHes sent and not acknowledged yet: (mark, chunks of ``pending`` and their
        #: data bytes that each covers), oldest first
        self.flushes: list[tuple[int | None, int, int]] = []
        self.acked_marks: list[int] = []  #: acknowledged since the last checkpoint_behind
        self.unflushed = 0  #: data bytes written since the last FLUSH sent
        channel.open_write(path)  # no blind retry: we replay

    def _send(self, chunk: Chunk) -> None:
        ch = self.channel
        if chunk.hole:
            ch.send_frame(proto.HOLE, proto.LENGTH.pack(chunk.length), chunk.offset)
            return
        if chunk.packed is not None and _speaks(ch, chunk.packed[1]):
            # relay: the source's compressed frame goes on as it came (never recompressed)
            ch.send_frame(proto.DATA, chunk.packed[0], chunk.offset, chunk.packed[1])
            return
        data, flags = chunk.data or b"", 0
        if ch.codec:
            if self.compressor is None:
                self.compressor = proto.Compressor(ch.codec, ch.compress_level)
            data, flags = self.compressor.pack(data)
        ch.send_frame(proto.DATA, data, chunk.offset, flags)

    def _recover(self, exc: TransportError) -> None:
        """Reconnect (bounded, with backoff) and replay the unacknowledged chunks.

        Out of reconnects (or interrupted), the writer is closed; an agent's refusal to
        reopen leaves it to :meth:`abort`.
        """
        try:
            self.retry.failed(exc)
            self.channel.readback_got = None  # a reopened stream reads back only its part
            for attempt in self.retry:
                with attempt:
                    self.channel.open_write(self.path)
                    for c in self.pending:
                        self._send(c)
                    if self.flushes:  # lost with the stream: one FLUSH covers what they did
                        self.channel.send_frame(proto.FLUSH)
                        self.flushes = [(self.flushes[-1][0], len(self.pending),
                                         self.pending_bytes)]
                    self.channel.events.append({"event": "resume", "what": "write",
                                                "path": self.path,
                                                "replayed_bytes": self.pending_bytes})
        except BaseException as stop:
            if isinstance(stop, TransportError) or not isinstance(stop, Exception):
                self.closed = True
            raise

    def write(self, chunk: Chunk) -> None:
        self.pending.append(chunk)
        n = 0 if chunk.hole else chunk.length
        self.pending_bytes += n
        self.unflushed += n
        try:
            self._send(chunk)
        except TransportError as exc:
            self._recover(exc)  # the replay includes this chunk
        if self.unflushed >= self.replay_limit:
            self.checkpoint()

    def _sync(self, ftype: int) -> int:
        while True:
            try:
                acked = sync_write(self.channel, ftype, self.path, behind=len(self.flushes))
            except TransportError as exc:
                self._recover(exc)
                continue
            except AgentError:
                self.closed = True  # the agent ended the stream
                raise
            self.acked_marks += [m for m, _, _ in self.flushes if m is not None]
            self.flushes = []
            self.pending.clear()
            self.pending_bytes = self.unflushed = 0
            self.retry.progressed()
            return self.acked_base + acked

    def checkpoint(self) -> int:
        return self._sync(proto.FLUSH)

    def checkpoint_behind(self, mark: int) -> list[int]:
        """FLUSH now, read the previous FLUSH's ACK (see the class); a lost connection
        replays and checkpoints at once, as :meth:`checkpoint`."""
        try:
            self.channel.send_frame(proto.FLUSH)
            self.channel.flush()
            self.flushes.append((mark, len(self.pending), self.pending_bytes))
            self.unflushed = 0
            while len(self.flushes) > 1:
                self._take_ack()
        except TransportError as exc:
            if not self.flushes or self.flushes[-1][0] != mark:
                self.flushes.append((mark, len(self.pending), self.pending_bytes))
            self._recover(exc)
            self._sync(proto.FLUSH)
        except AgentError:
            self.closed = True  # the agent ended the stream
            raise
        done, self.acked_marks = self.acked_marks, []
        return done

    def _take_ack(self) -> None:
        """The oldest FLUSH in flight is durable: its chunks need no replay any more."""
        take_ack(self.channel, self.path)
        mark, chunks, nbytes = self.flushes.pop(0)
        del self.pending[:chunks]
        self.pending_bytes -= nbytes
        self.flushes = [(m, c - chunks, b - nbytes) for m, c, b in self.flushes]
        if mark is not None:
            self.acked_marks.append(mark)
        self.retry.progressed()

    def close(self) -> int:
        if self.closed:
            return 0
        acked = self._sync(proto.END)
        self.closed = True
        self.channel.release()
        return acked

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.channel.disconnect()


#: frame flag -> the codec name agents list in their HELLO
FLAG_CODECS = {proto.FLAG_ZLIB: "zlib", proto.FLAG_ZSTD: "zstd", proto.FLAG_LZ4: "lz4"}


def _speaks(channel: AgentChannel, flags: int) -> bool:
    """The destination's agent decodes frames flagged so (it listed the codec in HELLO)."""
    name = FLAG_CODECS.get(flags)
    return name is not None and name in channel.hello.get("compression", [])
