"""Streams: read extents (DATA/HOLE frames), write extents (FLUSH/ACK), hash blocks."""

import errno
import os

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

from .codecbin import BIN_CHUNK
from .durable import Durable
from .hashing import HASH_FUNCS, StreamDigester, digest_blocks
from .packing import Packer
from .protocol import (
    ACK,
    DATA,
    DIGESTS,
    END,
    ERR,
    FLUSH,
    FRAME_NAMES,
    HEADER_SIZE,
    HOLE,
    LENGTH,
    RESP,
    ZERO_GRAIN,
    ProtocolError,
    error_dict,
    read_frame,
)
from .readback import ReadBack
from .sparse import data_and_holes, pwrite_all, split_zero_grains, write_zeros
from .unpacking import Unpacker


class Throttle(object):
    """A bandwidth cap: sleep so that bytes/elapsed stays under ``rate``."""

    def __init__(self, rate):
        # type: (typing.Optional[float]) -> None
        import time

        self.rate = float(rate) if rate else 0.0
        self.clock = time.time
        self.sleep = time.sleep
        self.start = self.clock()
        self.sent = 0

    def add(self, n):
        # type: (int) -> None
        if self.rate <= 0:
            return
        self.sent += n
        ahead = self.sent / self.rate - (self.clock() - self.start)
        if ahead > 0:
            self.sleep(ahead)


def digesting(req, emit, send):
    """``emit`` that also digests the frames it carries when the request asks
    (``req["digest"]``: algorithm, block); the digester's DIGESTS go to ``send``."""
    want = req.get("digest")
    if not want:
        return emit, None
    func = HASH_FUNCS.get(want["algorithm"])
    if func is None:
        raise ValueError("hash algorithm {!r} not available here".format(want["algorithm"]))
    dig = StreamDigester(func, int(want["block"]), lambda entries: send(DIGESTS, entries),
                         size=want.get("size"))

    def both(ftype, payload, arg):
        if ftype == DATA:
            dig.add(arg, payload, len(payload))
        elif ftype == HOLE:
            dig.add(arg, None, LENGTH.unpack(payload)[0])
        emit(ftype, payload, arg)

    return both, dig


def frame_size(req, default, packer):
    """A read's DATA frame size: as asked, but at least BIN_CHUNK where a binary compresses
    (a process per frame); the ``chunk`` a request names is kept as asked."""
    chunk = int(req.get("chunk", default))
    return chunk if "chunk" in req or not packer.by_binary else max(chunk, BIN_CHUNK)


class StreamOps(object):
    """Mixed into the Agent: the streaming operations."""

    def op_read(self, req):
        """Stream extents as DATA/HOLE frames, then END with a summary (and the codec that
        ran, the frames compressed or not, the bytes on the wire)."""
        send = self.send
        try:
            throttle = Throttle(req.get("bwlimit"))

            def out(ftype, payload, arg, flags, _size):
                send(ftype, payload, arg, flags)
                throttle.add(len(payload) + HEADER_SIZE)

            packer = Packer(req.get("compress"), req.get("level"), out)
            emit, dig = digesting(req, packer.emit, send)
        except ValueError as exc:
            self.send_json(ERR, error_dict(exc))
            return None
        stats = {"sent": 0, "holes": 0, "read": 0}
        try:
            self.read_frames(req["path"], req["extents"], frame_size(req, self.chunk, packer),
                             emit, stats)
            packer.finish()
            if dig is not None:
                dig.finish()
                stats["digests"] = dig.count
        except (OSError, ValueError) as exc:
            packer.abort()
            self.send_json(ERR, error_dict(exc))
            return None
        stats.update(packer.stats, codec=packer.codec)
        self.send_json(END, stats)
        return None

    def read_frames(self, path, extents, chunk, emit, stats):
        """Call ``emit(type, payload, offset)`` for the DATA/HOLE frames of the extents."""
        fd = os.open(self.path(path), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            zero = bytes(ZERO_GRAIN)
            for start, length in extents:
                end = min(start + length, size)
                if end < start + length:
                    # reading past EOF of a disk is a caller bug: say so.
                    raise ValueError("extent {}+{} beyond end of file ({})".format(start, length, size))
                for kind, s, n in data_and_holes(fd, start, end):
                    if kind == "hole":
                        emit(HOLE, LENGTH.pack(n), s)
                        stats["holes"] += n
                        continue
                    pos = s
                    while pos < s + n:
                        # reads end on the chunk grid: the certify blocks a stream digests
                        # (a divisor of the chunk) then lie in one frame, not joined from two
                        want = min(chunk - pos % chunk, s + n - pos)
                        buf = os.pread(fd, want, pos)
                        if len(buf) != want:
                            raise OSError(errno.EIO, "short read at {}".format(pos))
                        stats["read"] += want
                        split_zero_grains(buf, pos, zero, emit, stats)
                        pos += want
        finally:
            os.close(fd)

    def op_write(self, req):
        """Receive DATA/HOLE frames into a file until END; FLUSH makes them durable."""
        full = self.path(req["path"])
        # read-write: a hole in a thick file is written only where it does not read as
        # zeros already (sparse.write_zeros)
        flags = os.O_RDWR | (os.O_CREAT if req.get("create") else 0)
        fd = os.open(full, flags, 0o600)
        count = {"written": 0, "holes": 0}
        try:  # the destination's certify digests, read back during the copy
            back = ReadBack(fd, req["digest"]) if req.get("digest") else None
        except ValueError:
            os.close(fd)
            raise

        def write(data, offset):  # on the unpacker's writer thread, as zeros()
            pwrite_all(fd, data, offset)
            count["written"] += len(data)
            if back is not None:
                back.written(offset, len(data))

        def zeros(offset, n):
            write_zeros(fd, offset, n)
            count["holes"] += n
            if back is not None:
                back.written(offset, n)

        # compressed frames decoded in parallel, written in order beside the reading
        unpacker = Unpacker(write, zeros=zeros)

        def ack(n):  # from the fsync thread, the only sender while it runs
            self.send(ACK, b"", n)
            self.wfile.flush()

        durable = Durable(fd, ack)
        failure = None
        try:
            self.send_json(RESP, {"ok": True})
            self.wfile.flush()
            while True:
                ftype, fflags, arg, payload, _ = read_frame(self.rfile)
                if ftype in (DATA, HOLE) and failure is None:
                    try:
                        if ftype == DATA:
                            unpacker.add(fflags, payload, arg)
                        else:
                            unpacker.hole(arg, LENGTH.unpack(payload)[0])
                    except OSError as exc:
                        failure = exc
                elif ftype in (FLUSH, END):
                    if failure is None:
                        try:
                            unpacker.drain()
                            failure = durable.wait()  # the FLUSH before (long over, mostly)
                            if failure is None and ftype == FLUSH:
                                # durable, then acknowledged, beside the stream (durable.py)
                                durable.start(count["written"] + count["holes"])
                                continue
                            if failure is None:
                                os.fsync(fd)
                                durable.acked = count["written"] + count["holes"]
                                if back is not None:
                                    for entries in back.finish():
                                        self.send(DIGESTS, entries)
                                    back = None
                        except OSError as exc:
                            failure = exc
                    durable.wait()
                    if failure is not None:
                        self.send_json(ERR, error_dict(failure, acked=durable.acked))
                        if ftype == END:
                            return None
                    elif ftype == END:
                        self.send_json(END, {"written": count["written"], "holes": count["holes"],
                                             "acked": durable.acked})
                        return None
                    self.wfile.flush()
                elif ftype not in (DATA, HOLE):
                    raise ProtocolError("unexpected {} in write stream".format(FRAME_NAMES.get(ftype, ftype)))
        finally:
            durable.wait()  # before the file is closed under its fsync
            unpacker.close()
            if back is not None:
                back.close()
                back.thread.join()
            os.close(fd)

    def op_hash(self, req):
        """Digest every block of the extents (or the file), streamed in DIGESTS frames."""
        algo = req["algorithm"]
        func = HASH_FUNCS.get(algo)
        if func is None:
            raise ValueError("hash algorithm {!r} not available here".format(algo))
        block = int(req["block"])
        per_frame = max(1, int(req.get("per_frame", 2048)))
        fd = os.open(self.path(req["path"]), os.O_RDONLY)
        try:
            count = digest_blocks(fd, req.get("extents"), block, func, per_frame,
                                  lambda entries: self.send(DIGESTS, entries))
        except (OSError, ValueError) as exc:
            self.send_json(ERR, error_dict(exc))
            return None
        finally:
            os.close(fd)
        self.send_json(END, {"blocks": count})
        return None
