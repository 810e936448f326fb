"""The client side of the agent protocol: a :class:`Datastore` over a transport."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..errors import AgentError, DeltaFormatUnknown, TransportError
from ..extents import Extent
from ..modes import DiskFormat
from .agent import protocol as proto
from .agent.hashing import HASH_FUNCS
from .agentchannel import AgentChannel
from .datastore import (
    PEEK_LIMIT,
    BlockDigest,
    Chunk,
    Datastore,
    ExtentWriter,
    FileStat,
    Peeked,
    StorageProbe,
    StreamSummary,
)
from .deltas import DeltaExtents
from .streamsummary import summary_of
from .transport import Transport


def _digest_size(algorithm: str) -> int:
    func = HASH_FUNCS.get(algorithm)
    if func is not None:
        return len(func(b""))
    return {"xxh3_128": 16, "blake3": 32, "sha1": 20, "sha256": 32, "blake2b": 32, "md5": 16}[
        algorithm
    ]


def parse_digests(payload: bytes, algorithm: str) -> Iterator[BlockDigest]:
    """The entries of one DIGESTS frame."""
    entry = proto.DIGEST_ENTRY.size
    step = entry + _digest_size(algorithm)
    for i in range(0, len(payload), step):
        off, ln = proto.DIGEST_ENTRY.unpack_from(payload, i)
        yield BlockDigest(off, ln, payload[i + entry : i + step])


class AgentDatastore(Datastore):
    """One datastore served by one agent, through one :class:`AgentChannel`.

    Streams are exclusive: one at a time.
    """

    def __init__(self, name: str, transport: Transport, channel: AgentChannel | None = None) -> None:
        self.name = name
        self.transport = transport
        self.channel = channel or AgentChannel(name, transport)
        self.digest_request: tuple[str, int, int | None] | None = None  #: by stream_digests
        self.streamed: list[BlockDigest] | None = None  #: what the armed stream digested

    def stream_digests(self, algorithm: str, block: int, size: int | None = None) -> bool:
        """Arm the next read or push stream to digest what it carries (the agent has it);
        ``size``: the whole ``[0, size)`` grid, what the stream skips counted as zeros."""
        self.digest_request, self.streamed = (algorithm, block, size), []
        return True

    def streamed_digests(self) -> list[BlockDigest] | None:
        """The armed stream's digests (None: none, or the stream was resumed); disarms."""
        out, self.digest_request, self.streamed = self.streamed, None, None
        return out

    def digest_options(self) -> dict[str, Any]:
        """What a read or push request adds when a digest is armed."""
        if self.digest_request is None or self.streamed is None:
            return {}
        algo, block, size = self.digest_request
        want: dict[str, Any] = {"algorithm": algo, "block": block}
        if size is not None:
            want["size"] = size
        return {"digest": want}

    def arm_readback(self, algorithm: str, block: int, size: int | None) -> bool:
        """Arm the next write stream to read back and digest what it writes (the agent
        has it); ``size``: the whole ``[0, size)`` grid (a seed)."""
        self.channel.readback, self.channel.readback_got = (algorithm, block, size), []
        return True

    def readback_digests(self) -> list[BlockDigest] | None:
        """The armed write stream's read-back digests (None: none, or it was reopened);
        disarms."""
        ch = self.channel
        got, armed = ch.readback_got, ch.readback
        ch.readback, ch.readback_got = None, None
        if got is None or armed is None:
            return None
        return [d for payload in got for d in parse_digests(payload, armed[0])]

    def took_digests(self, payload: bytes) -> None:
        """Keep a DIGESTS frame of the armed stream."""
        if self.digest_request is not None and self.streamed is not None:
            self.streamed.extend(parse_digests(payload, self.digest_request[0]))

    @property
    def hello(self) -> dict[str, Any]:
        """The agent's HELLO at the last handshake (version, features, pid, root)."""
        return self.channel.hello

    @property
    def last_summary(self) -> dict[str, Any]:
        """The last stream's summary as the agent sent it (bytes sent, holes, read;
        ``wire`` for a push)."""
        return self.channel.summary

    def last_read_summary(self) -> StreamSummary | None:
        """The last stream's summary (see :meth:`Datastore.last_read_summary`)."""
        return summary_of(self.channel.summary) if self.channel.summary else None

    def close(self) -> None:
        """Ask the agent to quit, then drop the transport.  Never raises for a dead peer."""
        self.channel.close()

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """One request, one JSON answer."""
        return self.channel.request(op, **args)

    # --- simple operations -------------------------------------------------------------
    def free_space(self) -> int:
        return int(self.call("statfs")["free"])

    def stat(self, path: str) -> FileStat | None:
        return stat_of(self.call("stat", path=path))

    def peek(self, paths: Sequence[str], read: Sequence[str] = ()) -> dict[str, Peeked]:
        """Every stat and read in one round trip (see :meth:`Datastore.peek`): the agent
        answers them in order; a file of ``read`` that is absent answers an error, unused."""
        want = list(dict.fromkeys([*paths, *read]))
        reads = list(dict.fromkeys(read))
        if not want:
            return {}
        answers = self.channel.requests([("stat", {"path": p}) for p in want]
                                        + [("read_file", {"path": p, "limit": PEEK_LIMIT})
                                           for p in reads])
        stats, datas = answers[:len(want)], dict(zip(reads, answers[len(want):], strict=True))
        out: dict[str, Peeked] = {}
        for path, st in zip(want, stats, strict=True):
            if isinstance(st, AgentError):
                raise st
            got = datas.get(path)
            data = None if got is None or isinstance(got, AgentError) else got["data"]
            out[path] = Peeked(stat_of(st), None if data is None else base64.b64decode(data))
        return out

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

    def create_disk(self, path: str, size: int, provisioning: DiskFormat = "thin") -> None:
        self.call("create_disk", path=path, size=size, format=provisioning)

    def storage_probe(self) -> StorageProbe | None:
        """From the agent's HELLO (``storage``: its probe of the served folder)."""
        self.channel.connect()
        s = self.hello.get("storage")
        if not isinstance(s, dict):
            return None
        return StorageProbe(seek_data=s.get("seek_data"), punch_hole=s.get("punch_hole"),
                            python=str(self.hello.get("python", "")),
                            vmkfstools=bool(s.get("vmkfstools")), detail=str(s.get("error", "")))

    def grow_disk(self, path: str, size: int) -> None:
        self.call("grow_disk", path=path, size=size)

    def remove(self, path: str) -> None:
        self.call("remove", path=path)

    def allocated(self, path: str) -> list[Extent]:
        return [Extent(s, n) for s, n in self.call("allocated", path=path)["extents"]]

    def algorithms(self) -> list[str]:
        self.channel.connect()
        return list(self.hello.get("algorithms", []))

    def delta_extents(self, path: str) -> DeltaExtents | None:
        """The changed grains of a frozen snapshot delta (``-sesparse.vmdk``/``-delta.vmdk``)."""
        self.channel.connect()
        if "delta_formats" not in self.hello.get("features", []):
            return None
        try:
            return DeltaExtents.from_answer(path, self.call("delta_extents", path=path))
        except AgentError as exc:
            if exc.fields.get("agent_error") == "DeltaFormatError":
                raise DeltaFormatUnknown(exc.message, path=path) from exc
            raise

    def read_delta(self, path: str, offset: int, length: int) -> bytes:
        """Guest bytes of a changed area, read from the delta file (at most 4 MiB)."""
        data = base64.b64decode(self.call("read_delta", path=path, offset=offset,
                                          length=length)["data"])
        if len(data) != length:
            raise AgentError(f"read_delta returned {len(data)} of {length} bytes",
                             datastore=self.name, path=path)
        return data

    # --- streams ---------------------------------------------------------------------
    def read_extents(self, path: str, extents: Iterable[Extent]) -> Iterator[Chunk]:
        self.channel.connect()  # the codec is chosen at the handshake
        req = {"op": "read", "path": path, "extents": [[e.start, e.length] for e in extents],
               **self.channel.read_options(), **self.digest_options()}
        for ftype, payload, arg in self.channel.stream(req, decode=False):
            if ftype == proto.DATA:
                packed = self.channel.last_packed
                yield Chunk(arg, len(payload), payload) if packed is None else self._packed(arg, packed)
            elif ftype == proto.HOLE:
                yield Chunk(arg, proto.LENGTH.unpack(payload)[0], None)
            elif ftype == proto.DIGESTS:
                self.took_digests(payload)
            else:
                raise AgentError(f"unexpected frame {ftype} in read stream", datastore=self.name)

    def _packed(self, offset: int, packed: tuple[bytes, int]) -> Chunk:
        """A compressed DATA frame as a chunk, decoded only when its data is used (a relay
        forwards it as it came) if the frame says its length; else decoded now."""
        payload, flags = packed

        def decode() -> bytes:
            try:
                return proto.decode_payload(flags, payload)
            except proto.ProtocolError as exc:
                raise AgentError(f"agent protocol error: {exc}", datastore=self.name) from exc

        length = proto.packed_length(flags, payload)
        if length is None:
            data = decode()
            return Chunk(offset, len(data), data, packed)
        return Chunk(offset, length, None, packed, decode)

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
        for ftype, payload, _arg in self.channel.stream(req):
            if ftype != proto.DIGESTS:
                raise AgentError(f"unexpected frame {ftype} in hash stream", datastore=self.name)
            for i in range(0, len(payload), step):
                off, ln = unpack(payload, i)
                yield BlockDigest(off, ln, payload[i + entry : i + step])

    def open_writer(self, path: str) -> ExtentWriter:
        self.channel.open_write(path)
        return AgentWriter(self.channel, path)


class AgentWriter(ExtentWriter):
    """Frames into the agent's write stream; FLUSH answers with the durable byte count.
    :meth:`checkpoint_behind` keeps one FLUSH in flight (its ACK read at the next one)."""

    def __init__(self, channel: AgentChannel, path: str) -> None:
        self.channel = channel
        self.path = path
        self.closed = False
        self.flushes: list[int] = []  #: marks of the FLUSHes in flight, oldest first
        self.acked_marks: list[int] = []  #: acknowledged by a checkpoint() meanwhile

    def write(self, chunk: Chunk) -> None:
        if chunk.hole or chunk.data is None:
            self.channel.send_frame(proto.HOLE, proto.LENGTH.pack(chunk.length), chunk.offset)
        else:
            self.channel.send_frame(proto.DATA, chunk.data, chunk.offset)

    def _sync(self, ftype: int) -> int:
        try:
            acked = sync_write(self.channel, ftype, self.path, behind=len(self.flushes))
        except TransportError:
            raise
        except AgentError:
            self.closed = True  # the agent ended the stream
            raise
        self.acked_marks += self.flushes
        self.flushes = []
        return acked

    def checkpoint(self) -> int:
        return self._sync(proto.FLUSH)

    def checkpoint_behind(self, mark: int) -> list[int]:
        try:
            self.channel.send_frame(proto.FLUSH)
            self.channel.flush()
            self.flushes.append(mark)
            while len(self.flushes) > 1:
                take_ack(self.channel, self.path)
                self.acked_marks.append(self.flushes.pop(0))
        except TransportError:
            raise
        except AgentError:
            self.closed = True  # the agent ended the stream
            raise
        done, self.acked_marks = self.acked_marks, []
        return done

    def close(self) -> int:
        if self.closed:
            return 0
        self.closed = True
        acked = self._sync(proto.END)
        self.channel.release()
        return acked

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.channel.disconnect()


def stat_of(r: dict[str, Any]) -> FileStat | None:
    """A stat answer as a FileStat (None: the path does not exist)."""
    if not r["exists"]:
        return None
    mtime = r.get("mtime_ns")
    return FileStat(size=r["size"], allocated=r["allocated"], is_dir=r["is_dir"],
                    mtime_ns=mtime if isinstance(mtime, int) else None)


def sync_write(channel: AgentChannel, ftype: int, path: str, behind: int = 0) -> int:
    """Send FLUSH or END on a write stream and return the bytes the agent acknowledged,
    after the ACKs of ``behind`` FLUSHes sent before and not read yet (:func:`take_ack`).

    An ERR answer (the agent could not write) drops the connection and raises it;
    a lost connection raises :class:`TransportError` (the caller may replay).
    """
    channel.send_frame(ftype)
    channel.flush()
    for _ in range(behind):
        take_ack(channel, path)
    rtype, payload, arg = channel.recv_frame()
    while rtype == proto.DIGESTS:  # the agent's read-back digests come before its END
        channel.took_readback(payload)
        rtype, payload, arg = channel.recv_frame()
    if rtype == proto.ERR:
        err = channel.agent_error(payload, op="write", path=path)
        channel.disconnect()
        raise err
    if ftype == proto.FLUSH and rtype == proto.ACK:
        return arg
    if ftype == proto.END and rtype == proto.END:
        return int(json.loads(payload)["acked"])
    channel.disconnect()
    raise AgentError(f"unexpected frame {rtype} in write stream", datastore=channel.datastore)


def take_ack(channel: AgentChannel, path: str) -> int:
    """Read the ACK of a FLUSH sent earlier on a write stream (the bytes acknowledged);
    an ERR drops the connection and raises it, as :func:`sync_write`."""
    rtype, payload, arg = channel.recv_frame()
    if rtype == proto.ACK:
        return arg
    if rtype == proto.ERR:
        err = channel.agent_error(payload, op="write", path=path)
        channel.disconnect()
        raise err
    channel.disconnect()
    raise AgentError(f"unexpected frame {rtype} in write stream", datastore=channel.datastore)
