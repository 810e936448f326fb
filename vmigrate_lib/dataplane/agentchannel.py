"""One agent's connection: frames both ways, the handshake, exclusive streams, reconnect pauses.

The datastore clients (:class:`~vmigrate_lib.dataplane.client.AgentDatastore` and its
SSH flavour), their write streams and direct mode's push all talk to an agent
through this one public object, so that none of them reaches into another's
state.  A channel serves one stream at a time: a read, hash or push stream, or a
write stream opened with :meth:`AgentChannel.open_write`, owns it until its end.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

from ..errors import AgentError, CodecUnavailable, NoSpaceLeft, TransportError
from .agent import protocol as proto
from .retry import NO_RETRY, RetryEvent, Retrying, RetryPolicy, lost_connection
from .transport import Transport

log = logging.getLogger("vmigrate.ssh")

#: What a stream yields: frame type, payload (decompressed), the frame's argument.
Frame = tuple[int, bytes, int]


def choose_codec(want: str, offered: list[str]) -> str | None:
    """The compression both sides speak: ``want`` is "", a codec, or "auto" (the fastest
    both have: zstd, lz4, zlib; a module or a binary on either side)."""
    if want == "auto":
        return proto.best_codec(offered)
    if want and want in offered and want in proto.CODECS:
        return want
    return None


def codec_missing(want: str, offered: list[str], datastore: str) -> CodecUnavailable | None:
    """The error for a named codec a side lacks (None: ``want`` can run, or is off/auto)."""
    if not want or want == "auto" or choose_codec(want, offered) is not None:
        return None
    side = (f"the agent of datastore {datastore} offers only {', '.join(offered) or 'none'}"
            if want not in offered else "this machine's python lacks it")
    why = {"zstd": " (no zstandard module in that python, no zstd binary on that host)",
           "lz4": " (no lz4 binary on that host)"}.get(want, "")
    return CodecUnavailable(f"ssh_compress {want} is requested but {side}{why}",
                            datastore=datastore, codec=want, offered=list(offered))


class AgentChannel:
    """Frames to and from one agent, started through ``transport`` on demand.

    ``retry`` bounds the reconnects of :meth:`retrying` (the default, 0 retries: a
    lost connection is final).  ``compress`` asks for a codec (see :func:`choose_codec`),
    chosen again at every new handshake.  ``reconnects`` and ``events`` record what
    happened, for the journal.
    """

    def __init__(self, datastore: str, transport: Transport, *,
                 retry: RetryPolicy = NO_RETRY, compress: str = "",
                 compress_level: int | None = None) -> None:
        self.datastore = datastore
        self.transport = transport
        self.retry = retry
        self.compress = compress
        self.compress_level = compress_level
        self.codec: str | None = None  #: the codec chosen at the last handshake
        self.codec_error: CodecUnavailable | None = None
        self.hello: dict[str, Any] = {}  #: the agent's HELLO (version, features, pid, root)
        self.summary: dict[str, Any] = {}  #: the END payload of the last stream
        self.reconnects = 0
        #: the last frame's payload as it came (compressed) and its flags, for a relay
        #: that forwards it untouched; None when the frame was not compressed
        self.last_packed: tuple[bytes, int] | None = None
        self.wire_in = 0  #: bytes received (headers and payloads as they came)
        self.events: list[dict[str, Any]] = []  #: reconnects and resumes, for the journal
        #: the next write stream's read-back digests (algorithm, block, whole size or None),
        #: armed by the datastore; ``readback_got`` their DIGESTS payloads (None: disarmed,
        #: or the stream was reopened and the digests would not cover it all)
        self.readback: tuple[str, int, int | None] | None = None
        self.readback_got: list[bytes] | None = None
        self._r: IO[bytes] | None = None
        self._w: IO[bytes] | None = None
        self._busy = False

    # --- connection ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._r is not None and self._w is not None

    @property
    def busy(self) -> bool:
        """A stream owns the connection (it cannot carry a request)."""
        return self._busy

    def connect(self) -> None:
        """Reuse the idle connection, or start the agent and shake hands."""
        if self.connected and not self._busy:
            return
        self.disconnect()
        for first in (True, False):
            try:
                self._handshake()
                break
            except TransportError as exc:
                if first and self.transport.restart():
                    continue  # the agent file was missing: installed now, start again
                why = self.transport.failed_start(exc, self.datastore)
                if why is not None:
                    raise why from exc
                raise
        offered = self.hello.get("compression", [])
        #: a requested codec this side lacks: raised by every stream that would use it
        #: (never a silent fallback); requests and preflight go on and say so
        self.codec_error = codec_missing(self.compress, offered, self.datastore)
        self.codec = choose_codec(self.compress, offered)

    def _handshake(self) -> None:
        self._r, self._w = self.transport.start()
        try:
            self.send_frame(proto.HELLO, json.dumps({"version": proto.PROTOCOL_VERSION}).encode())
            self.flush()
            ftype, payload, _ = self.recv_frame()
        except TransportError:
            self.disconnect()
            raise
        if ftype == proto.ERR:
            info = json.loads(payload)
            raise AgentError(
                f"agent refused the handshake: {info.get('message')}",
                hint="the agent and the client are of different vmigrate versions",
                datastore=self.datastore,
            )
        if ftype != proto.HELLO:
            raise AgentError("agent did not answer HELLO", datastore=self.datastore)
        self.hello = json.loads(payload)

    def disconnect(self) -> None:
        """Drop the connection (the next request starts the agent afresh)."""
        self._r = self._w = None
        self._busy = False
        self.transport.close()

    def close(self) -> None:
        """Ask the agent to quit, then drop the transport.  Never raises for a dead peer."""
        w = self._w
        if w is not None and not self._busy:
            quit_req = b'{"op": "quit"}'
            try:
                w.write(proto.pack_frame(proto.REQ, quit_req))
                w.write(quit_req)
                w.flush()
            except (OSError, ValueError):
                pass  # the agent or its connection is already gone: no one to say goodbye to
        self.disconnect()

    # --- frames ---------------------------------------------------------------------
    def send_frame(self, ftype: int, payload: bytes = b"", arg: int = 0, flags: int = 0) -> None:
        """Queue one frame (``flush`` sends it); a broken pipe is a :class:`TransportError`."""
        if self._w is None:
            raise self.fail(OSError("not connected"))
        try:
            self._w.write(proto.pack_frame(ftype, payload, arg, flags))
            if payload:
                self._w.write(payload)
        except (OSError, ValueError) as exc:
            raise self.fail(exc) from exc

    def flush(self) -> None:
        if self._w is None:
            raise self.fail(OSError("not connected"))
        try:
            self._w.flush()
        except (OSError, ValueError) as exc:
            raise self.fail(exc) from exc

    def recv_frame(self, decode: bool = True) -> Frame:
        """The next frame, its payload decompressed as its flags say (``decode`` False: as
        it came; :attr:`last_packed` has its flags)."""
        if self._r is None:
            raise self.fail(OSError("not connected"))
        try:
            ftype, flags, arg, payload, _raw = proto.read_frame(self._r)
            self.wire_in += proto.HEADER_SIZE + len(payload)
            if not flags:
                self.last_packed = None
                return ftype, payload, arg
            self.last_packed = (payload, flags)
            return ftype, proto.decode_payload(flags, payload) if decode else payload, arg
        except (EOFError, OSError, ValueError) as exc:
            raise self.fail(exc) from exc
        except proto.ProtocolError as exc:
            self.disconnect()
            raise AgentError(f"agent protocol error: {exc}", datastore=self.datastore) from exc

    def fail(self, exc: BaseException) -> TransportError:
        """The error for a lost connection (with what the agent said), after dropping it."""
        diag = self.transport.diagnostics()
        self.disconnect()
        detail = f": {diag}" if diag else ""
        return TransportError(
            f"lost the connection to the agent of datastore {self.datastore} ({exc}){detail}",
            datastore=self.datastore,
            transport=self.transport.description,
        )

    def agent_error(self, payload: bytes, **ctx: Any) -> AgentError:
        """The error an ERR frame carries (a full disk is :class:`NoSpaceLeft`)."""
        info = json.loads(payload)
        detail = {f"agent_{k}": v for k, v in info.items()}
        msg = f"{info.get('message')} on datastore {self.datastore}"
        if info.get("filename"):
            msg += f" ({info['filename']})"
        if info.get("errno") == errno.ENOSPC:
            return NoSpaceLeft(f"no space left: {msg}", datastore=self.datastore, **detail, **ctx)
        return AgentError(msg, datastore=self.datastore, **detail, **ctx)

    # --- requests and streams ------------------------------------------------------
    def request(self, op: str, **args: Any) -> dict[str, Any]:
        """One request, one JSON answer (no retry: the caller knows whether it may repeat)."""
        self.connect()
        self.send_frame(proto.REQ, json.dumps({"op": op, **args}).encode())
        self.flush()
        ftype, payload, _ = self.recv_frame()
        if ftype == proto.ERR:
            raise self.agent_error(payload, op=op)
        if ftype != proto.RESP:
            self.disconnect()
            raise AgentError(f"unexpected frame {ftype} for {op}", datastore=self.datastore)
        result: dict[str, Any] = json.loads(payload)
        return result

    def requests(self, calls: Sequence[tuple[str, dict[str, Any]]]
                 ) -> list[dict[str, Any] | AgentError]:
        """Several requests in one round trip: all sent, then each answer read (the agent
        serves them in order).  An answer the agent refused is its :class:`AgentError`
        in the list, the others still answer.  No retry, as :meth:`request`."""
        self.connect()
        for op, args in calls:
            self.send_frame(proto.REQ, json.dumps({"op": op, **args}).encode())
        self.flush()
        out: list[dict[str, Any] | AgentError] = []
        for op, _args in calls:
            ftype, payload, _ = self.recv_frame()
            if ftype == proto.ERR:
                out.append(self.agent_error(payload, op=op))
            elif ftype == proto.RESP:
                out.append(json.loads(payload))
            else:
                self.disconnect()
                raise AgentError(f"unexpected frame {ftype} for {op}", datastore=self.datastore)
        return out

    def stream(self, request: dict[str, Any], decode: bool = True) -> Iterator[Frame]:
        """Send a request and yield its frames until END (kept in ``summary``); exclusive.
        ``decode`` False: compressed payloads as they came (see :meth:`recv_frame`).

        Abandoned mid-stream, the connection holds unread frames: it is dropped.
        """
        self.connect()
        self.send_frame(proto.REQ, json.dumps(request).encode())
        self.flush()
        self._busy = True
        finished = False
        try:
            while True:
                ftype, payload, arg = self.recv_frame(decode)
                if ftype == proto.END:
                    finished = True
                    self.summary = json.loads(payload)
                    return
                if ftype == proto.ERR:
                    finished = True
                    raise self.agent_error(payload, op=request["op"], path=request.get("path"))
                yield ftype, payload, arg
        finally:
            if finished:
                self._busy = False
            else:
                self.disconnect()

    def read_options(self) -> dict[str, Any]:
        """What a read request adds to have its DATA compressed (empty: none)."""
        if self.codec_error is not None:
            raise self.codec_error
        if not self.codec:
            return {}
        out: dict[str, Any] = {"compress": self.codec}
        if self.compress_level is not None:
            out["level"] = self.compress_level
        return out

    def open_write(self, path: str) -> None:
        """Open a write stream (no retry): the channel is the writer's until :meth:`release`."""
        self.connect()
        if self.codec_error is not None:
            raise self.codec_error
        self.request("write", path=path, **self.write_options())
        self._busy = True

    def write_options(self) -> dict[str, Any]:
        """What a write request adds to have its agent read back and digest what it
        wrote (empty: not armed)."""
        if self.readback is None or self.readback_got is None:
            return {}
        algo, block, size = self.readback
        want: dict[str, Any] = {"algorithm": algo, "block": block}
        if size is not None:
            want["size"] = size
        return {"digest": want}

    def took_readback(self, payload: bytes) -> None:
        """Keep a DIGESTS frame of the armed write stream."""
        if self.readback_got is not None:
            self.readback_got.append(payload)

    def release(self) -> None:
        """A write stream ended cleanly: the connection can carry requests again."""
        self._busy = False

    # --- reconnects -------------------------------------------------------------------
    def retrying(self, what: str,
                 retry_if: Callable[[BaseException], bool] = lost_connection) -> Retrying:
        """Attempts of one request or stream under this channel's policy; each reconnect
        is counted, logged and recorded in :attr:`events`; giving up after ``retries``
        reconnects is a :class:`TransportError` naming this datastore."""
        return Retrying(self.retry, what, retry_if=retry_if, on_retry=self._reconnecting,
                        gave_up=self._gave_up)

    def _reconnecting(self, ev: RetryEvent) -> None:
        self.reconnects += 1
        self.events.append({"event": "reconnect", "what": ev.what, "attempt": ev.attempt,
                            "pause": ev.pause, "error": str(ev.error), "at": ev.at})
        log.warning("%s on %s: %s; reconnect %d/%d in %.1f s", ev.what, self.datastore,
                    ev.error, ev.attempt, ev.retries, ev.pause)

    def _gave_up(self, what: str, exc: BaseException, retries: int) -> TransportError:
        return TransportError(
            f"{what} on datastore {self.datastore}: gave up after {retries} reconnects ({exc})",
            datastore=self.datastore, transport=self.transport.description,
        )
