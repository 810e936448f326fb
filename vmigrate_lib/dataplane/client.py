"""The client side of the agent protocol: a :class:`Datastore` over a transport."""

from __future__ import annotations

import base64
import errno
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..errors import AgentError, NoSpaceLeft, TransportError
from ..extents import Extent
from .agent import protocol as proto
from .agent.hashing import HASH_FUNCS
from .datastore import BlockDigest, Chunk, Datastore, ExtentWriter, FileStat
from .transport import Transport


def _digest_size(algorithm: str) -> int:
    func = HASH_FUNCS.get(algorithm)
    if func is not None:
        return len(func(b""))
    return {"xxh3_128": 16, "blake3": 32, "sha1": 20, "sha256": 32, "blake2b": 32, "md5": 16}[
        algorithm
    ]


class AgentDatastore(Datastore):
    """One datastore served by one agent.  Streams are exclusive: one at a time."""

    def __init__(self, name: str, transport: Transport) -> None:
        self.name = name
        self.transport = transport
        self._r: IO[bytes] | None = None
        self._w: IO[bytes] | None = None
        self._busy = False
        self.hello: dict[str, Any] = {}
        self.last_summary: dict[str, Any] = {}

    # --- connection ---------------------------------------------------------------
    def _connect(self) -> tuple[IO[bytes], IO[bytes]]:
        if self._r is not None and self._w is not None and not self._busy:
            return self._r, self._w
        self._disconnect()
        r, w = self.transport.start()
        self._r, self._w = r, w
        try:
            self._send(proto.HELLO, json.dumps({"version": proto.PROTOCOL_VERSION}).encode())
            w.flush()
            ftype, payload, _ = self._recv()
        except TransportError:
            self._disconnect()
            raise
        if ftype == proto.ERR:
            info = json.loads(payload)
            raise AgentError(
                f"agent refused the handshake: {info.get('message')}",
                hint="the agent and the client are of different vmigrate versions",
                datastore=self.name,
            )
        if ftype != proto.HELLO:
            raise AgentError("agent did not answer HELLO", datastore=self.name)
        self.hello = json.loads(payload)
        return r, w

    def _disconnect(self) -> None:
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
        self._disconnect()

    def _send(self, ftype: int, payload: bytes = b"", arg: int = 0) -> None:
        assert self._w is not None
        try:
            self._w.write(proto.pack_frame(ftype, payload, arg))
            if payload:
                self._w.write(payload)
        except (BrokenPipeError, ConnectionError, OSError, ValueError) as exc:
            raise self._lost(exc) from exc

    def _flush(self) -> None:
        assert self._w is not None
        try:
            self._w.flush()
        except (BrokenPipeError, ConnectionError, OSError, ValueError) as exc:
            raise self._lost(exc) from exc

    def _recv(self) -> tuple[int, bytes, int]:
        assert self._r is not None
        try:
            ftype, flags, arg, payload, _raw = proto.read_frame(self._r)
            # compressed frames (negotiated in HELLO) announce their codec in the flags
            return ftype, proto.decode_payload(flags, payload) if flags else payload, arg
        except (EOFError, OSError, ValueError) as exc:
            raise self._lost(exc) from exc
        except proto.ProtocolError as exc:
            self._disconnect()
            raise AgentError(f"agent protocol error: {exc}", datastore=self.name) from exc

    def _lost(self, exc: BaseException) -> TransportError:
        diag = self.transport.diagnostics()
        self._disconnect()
        detail = f": {diag}" if diag else ""
        return TransportError(
            f"lost the connection to the agent of datastore {self.name} ({exc}){detail}",
            datastore=self.name,
            transport=self.transport.description,
        )

    def _error(self, payload: bytes, **ctx: Any) -> AgentError:
        info = json.loads(payload)
        detail = {f"agent_{k}": v for k, v in info.items()}
        msg = f"{info.get('message')} on datastore {self.name}"
        if info.get("filename"):
            msg += f" ({info['filename']})"
        if info.get("errno") == errno.ENOSPC:
            return NoSpaceLeft(f"no space left: {msg}", datastore=self.name, **detail, **ctx)
        return AgentError(msg, datastore=self.name, **detail, **ctx)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """One request, one JSON answer."""
        self._connect()
        self._send(proto.REQ, json.dumps({"op": op, **args}).encode())
        self._flush()
        ftype, payload, _ = self._recv()
        if ftype == proto.ERR:
            raise self._error(payload, op=op)
        if ftype != proto.RESP:
            self._disconnect()
            raise AgentError(f"unexpected frame {ftype} for {op}", datastore=self.name)
        result: dict[str, Any] = json.loads(payload)
        return result

    # --- simple operations -------------------------------------------------------------
    def free_space(self) -> int:
        return int(self.call("statfs")["free"])

    def stat(self, path: str) -> FileStat | None:
        r = self.call("stat", path=path)
        if not r["exists"]:
            return None
        return FileStat(size=r["size"], allocated=r["allocated"], is_dir=r["is_dir"])

    def listdir(self, path: str) -> list[str]:
        return list(self.call("listdir", path=path)["names"])

    def makedirs(self, path: str) -> None:
        self.call("makedirs", path=path)

    def read_file(self, path: str) -> bytes:
        return base64.b64decode(self.call("read_file", path=path)["data"])

    def write_file(self, path: str, data: bytes, exclusive: bool = False) -> None:
        self.call(
            "write_file", path=path, data=base64.b64encode(data).decode(), exclusive=exclusive
        )

    def create_disk(self, path: str, size: int) -> None:
        self.call("create_disk", path=path, size=size)

    def grow_disk(self, path: str, size: int) -> None:
        self.call("grow_disk", path=path, size=size)

    def remove(self, path: str) -> None:
        self.call("remove", path=path)

    def allocated(self, path: str) -> list[Extent]:
        return [Extent(s, n) for s, n in self.call("allocated", path=path)["extents"]]

    def algorithms(self) -> list[str]:
        self._connect()
        return list(self.hello.get("algorithms", []))

    # --- streams ---------------------------------------------------------------------
    def _stream(self, request: dict[str, Any]) -> Iterator[tuple[int, bytes, int]]:
        """Send a request and yield its frames until END; the connection is exclusive."""
        self._connect()
        self._send(proto.REQ, json.dumps(request).encode())
        self._flush()
        self._busy = True
        finished = False
        try:
            while True:
                ftype, payload, arg = self._recv()
                if ftype == proto.END:
                    finished = True
                    self.last_summary = json.loads(payload)
                    return
                if ftype == proto.ERR:
                    finished = True
                    raise self._error(payload, op=request["op"], path=request.get("path"))
                yield ftype, payload, arg
        finally:
            if finished:
                self._busy = False
            else:  # abandoned mid-stream: the pipe holds unread frames, start afresh
                self._disconnect()

    def read_extents(self, path: str, extents: Iterable[Extent]) -> Iterator[Chunk]:
        req = {"op": "read", "path": path, "extents": [[e.start, e.length] for e in extents]}
        for ftype, payload, arg in self._stream(req):
            if ftype == proto.DATA:
                yield Chunk(arg, len(payload), payload)
            elif ftype == proto.HOLE:
                yield Chunk(arg, proto.LENGTH.unpack(payload)[0], None)
            else:
                raise AgentError(f"unexpected frame {ftype} in read stream", datastore=self.name)

    def hash_blocks(
        self, path: str, block_size: int, algorithm: str, extents: Iterable[Extent] | None = None
    ) -> Iterator[BlockDigest]:
        req: dict[str, Any] = {
            "op": "hash",
            "path": path,
            "block": block_size,
            "algorithm": algorithm,
            "extents": None if extents is None else [[e.start, e.length] for e in extents],
        }
        entry = proto.DIGEST_ENTRY.size
        step = entry + _digest_size(algorithm)
        unpack = proto.DIGEST_ENTRY.unpack_from
        for ftype, payload, _arg in self._stream(req):
            if ftype != proto.DIGESTS:
                raise AgentError(f"unexpected frame {ftype} in hash stream", datastore=self.name)
            for i in range(0, len(payload), step):
                off, ln = unpack(payload, i)
                yield BlockDigest(off, ln, payload[i + entry : i + step])

    def open_writer(self, path: str) -> ExtentWriter:
        self.call("write", path=path)
        self._busy = True
        return AgentWriter(self, path)


class AgentWriter(ExtentWriter):
    """Frames into the agent's write stream; FLUSH answers with the durable byte count."""

    def __init__(self, ds: AgentDatastore, path: str) -> None:
        self.ds = ds
        self.path = path
        self.closed = False

    def write(self, chunk: Chunk) -> None:
        if chunk.data is None:
            self.ds._send(proto.HOLE, proto.LENGTH.pack(chunk.length), chunk.offset)
        else:
            self.ds._send(proto.DATA, chunk.data, chunk.offset)

    def _sync(self, ftype: int) -> int:
        self.ds._send(ftype)
        self.ds._flush()
        rtype, payload, arg = self.ds._recv()
        if rtype == proto.ERR:
            self.closed = True
            err = self.ds._error(payload, op="write", path=self.path)
            self.ds._disconnect()
            raise err
        if ftype == proto.FLUSH and rtype == proto.ACK:
            return arg
        if ftype == proto.END and rtype == proto.END:
            return int(json.loads(payload)["acked"])
        self.ds._disconnect()
        raise AgentError(f"unexpected frame {rtype} in write stream", datastore=self.ds.name)

    def checkpoint(self) -> int:
        return self._sync(proto.FLUSH)

    def close(self) -> int:
        if self.closed:
            return 0
        self.closed = True
        acked = self._sync(proto.END)
        self.ds._busy = False
        return acked

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.ds._disconnect()
