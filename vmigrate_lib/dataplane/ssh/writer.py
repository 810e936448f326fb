"""A write stream that survives a lost connection by replaying unacknowledged chunks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ...errors import AgentError, TransportError
from ..agent import protocol as proto
from ..client import AgentDatastore
from ..datastore import Chunk, ExtentWriter

if TYPE_CHECKING:
    from .datastore import SshAgentDatastore


class ResilientWriter(ExtentWriter):
    """A write stream that survives a lost connection by replaying unacknowledged chunks.

    Chunks sent since the last acknowledged checkpoint are kept (at most
    ``replay_limit`` bytes: beyond that the writer checkpoints by itself).  After
    a reconnect the write stream is reopened and those chunks are written again
    at their offsets; what was acknowledged before is durable and not resent.
    """

    def __init__(self, ds: SshAgentDatastore, path: str, replay_limit: int = 64 * 1024 * 1024) -> None:
        self.ds = ds
        self.path = path
        self.replay_limit = replay_limit
        self.pending: list[Chunk] = []
        self.pending_bytes = 0
        self.acked_base = 0  #: bytes acknowledged by streams before the current one
        self.closed = False
        self.failures = 0
        self._open()

    def _open(self) -> None:
        AgentDatastore.call(self.ds, "write", path=self.path)  # no blind retry: we replay
        self.ds._busy = True

    def _send(self, chunk: Chunk) -> None:
        ds = self.ds
        if chunk.data is None:
            ds._send(proto.HOLE, proto.LENGTH.pack(chunk.length), chunk.offset)
            return
        data, flags = chunk.data, 0
        if ds.codec:
            comp = self.__dict__.get("_comp")
            if comp is None:
                comp = self.__dict__["_comp"] = proto.Compressor(ds.codec, ds.settings.compress_level)
            data, flags = comp.pack(data)
        assert ds._w is not None
        try:
            ds._w.write(proto.pack_frame(proto.DATA, data, chunk.offset, flags))
            ds._w.write(data)
        except (OSError, ValueError) as exc:
            raise ds._lost(exc) from exc

    def _recover(self, exc: TransportError) -> None:
        """Reconnect (bounded, with backoff) and replay the unacknowledged chunks."""
        last: BaseException = exc
        while True:
            self.failures += 1
            try:
                self.ds._pause(self.failures, last, "write stream lost its connection")
            except BaseException:
                self.closed = True
                raise
            try:
                self._open()
                for c in self.pending:
                    self._send(c)
                self.ds.events.append({"event": "resume", "what": "write", "path": self.path,
                                       "replayed_bytes": self.pending_bytes})
                return
            except TransportError as again:
                last = again

    def write(self, chunk: Chunk) -> None:
        self.pending.append(chunk)
        self.pending_bytes += chunk.length if chunk.data is not None else 0
        try:
            self._send(chunk)
        except TransportError as exc:
            self._recover(exc)  # the replay includes this chunk
        if self.pending_bytes >= self.replay_limit:
            self.checkpoint()

    def _sync(self, ftype: int) -> int:
        while True:
            try:
                self.ds._send(ftype)
                self.ds._flush()
                rtype, payload, arg = self.ds._recv()
            except TransportError as exc:
                self._recover(exc)
                continue
            if rtype == proto.ERR:
                self.closed = True
                err = self.ds._error(payload, op="write", path=self.path)
                self.ds._disconnect()
                raise err
            if ftype == proto.FLUSH and rtype == proto.ACK:
                acked = arg
            elif ftype == proto.END and rtype == proto.END:
                acked = int(json.loads(payload)["acked"])
            else:
                self.ds._disconnect()
                raise AgentError(f"unexpected frame {rtype} in write stream", datastore=self.ds.name)
            self.pending.clear()
            self.pending_bytes = 0
            self.failures = 0
            return self.acked_base + acked

    def checkpoint(self) -> int:
        return self._sync(proto.FLUSH)

    def close(self) -> int:
        if self.closed:
            return 0
        acked = self._sync(proto.END)
        self.closed = True
        self.ds._busy = False
        return acked

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.ds._disconnect()
