"""The write side of a stream: compressed DATA frames decoded on a thread pool, written in
frame order; a push's zstd stream pieces decoded in order on one thread of their own
(``protocol.FLAG_ZSTREAM``: each needs the ones before it).  Python 3.5, stdlib only.
"""

import os
from collections import deque

from .protocol import (
    CODEC_FLAGS,
    FLAG_ZSTREAM,
    FLAG_ZSTREAM_FIRST,
    ZSTREAM,
    ProtocolError,
    decode_payload,
    packed_length,
)

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

UNPACK_BYTES = 64 << 20  #: decoded bytes the write side keeps in flight


class Unpacker(object):
    """The write side: compressed DATA frames decoded on a thread pool (a codec binary or
    zstandard works without the GIL), ``write(data, offset)`` called in frame order.

    ``drain`` before a HOLE, a FLUSH or END: a checkpoint covers every frame before it."""

    def __init__(self, write, workers=None):
        self.write = write
        self.workers = workers or min(8, max(1, os.cpu_count() or 1))
        self.pool = None  # type: typing.Any
        self.queue = deque()  # type: typing.Any
        self.queued = 0  # data bytes the queue decodes to (or about: 4x a frame unsized)
        self.zpool = None  # type: typing.Any
        self.zdec = None  # type: typing.Any

    def add(self, flags, payload, offset):
        # type: (int, bytes, int) -> None
        if flags & FLAG_ZSTREAM:
            if ZSTREAM is None:
                raise ProtocolError("a zstd stream piece, and this agent has no zstd stream "
                                    "decoder")
            if self.zpool is None:
                from concurrent.futures import ThreadPoolExecutor
                self.zpool = ThreadPoolExecutor(1)  # in order: a piece needs those before
                self.zdec = ZSTREAM[1]()
            self.queue.append((self.zpool.submit(self._unstream, payload,
                                                 bool(flags & FLAG_ZSTREAM_FIRST)),
                               offset, 4 * len(payload)))
            self.queued += 4 * len(payload)
        elif not flags & CODEC_FLAGS:
            if not self.queue:
                self.write(payload, offset)
                return
            self.queue.append((payload, offset, len(payload)))
            self.queued += len(payload)
        else:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor
                self.pool = ThreadPoolExecutor(self.workers)
            size = packed_length(flags, payload) or 4 * len(payload)
            self.queue.append((self.pool.submit(decode_payload, flags, payload), offset, size))
            self.queued += size
        # joined frames decode to 16 MiB each: bounded in bytes as well as in frames
        while len(self.queue) > self.workers * 2 or (len(self.queue) > 1 and
                                                     self.queued > UNPACK_BYTES):
            self._write_one()

    def drain(self):
        while self.queue:
            self._write_one()

    def _write_one(self):
        item, offset, size = self.queue.popleft()
        self.queued -= size
        self.write(item if isinstance(item, bytes) else item.result(), offset)

    def _unstream(self, payload, first):
        try:
            return self.zdec.decode(payload, first)
        except Exception as exc:  # CodecFailed, zstd.ZstdError: the stream is corrupt
            raise ProtocolError("cannot decompress a stream piece: {}".format(exc)) from exc

    def close(self):
        """Stop the threads (frames still queued are dropped: the stream failed)."""
        self.queue.clear()
        self.queued = 0
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None
        if self.zpool is not None:
            self.zpool.submit(self.zdec.close)  # after the pieces still decoding
            self.zpool.shutdown(wait=False)
            self.zpool = None
