"""The write side of a stream: compressed DATA frames decoded on a thread pool and written
in frame order by a writer thread of their own, so that the loop reading the stream never
stops for a decode or a write; a push's zstd stream pieces decoded in order on one thread
of their own (``protocol.FLAG_ZSTREAM``: each needs the ones before it).

Why a writer thread: the stream's reader used to decode-wait and ``pwrite`` in its own
loop, and while it did nothing was read: the SSH channel's window (OpenSSH's channels.h,
CHAN_SES_WINDOW_DEFAULT: 64 packets of 32 KiB, 2 MiB) and the socket's buffers fill within
milliseconds at 1 Gbit/s, and the link stood still for as long as the write took (a 16
MiB frame into new pages: 13-40 ms at the 0.4-1.2 GB/s measured here, bench/README.md).
Holes go through the same queue: draining the queue at every HOLE between DATA frames
stopped the copy for every decode in flight.  Python 3.5, stdlib only.
"""

import os
import threading
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
ENTRIES = 64  #: frames (DATA and HOLE) queued at most, whatever their size
_ZEROS = object()  # a queue entry's item for a HOLE: zeros, nothing to decode


class Unpacker(object):
    """The write side: compressed DATA frames decoded on a thread pool (a codec binary or
    libzstd works without the GIL), ``write(data, offset)`` and ``zeros(offset, n)``
    called in frame order on the writer thread.

    ``drain`` before a FLUSH or END (a checkpoint covers every frame before it): it
    returns once every frame queued is on the file.  A failure of a write or a decode is
    raised by the next ``add``, ``hole`` or ``drain``, and nothing after it is written."""

    def __init__(self, write, workers=None, zeros=None):
        self.write = write
        self.zeros = zeros
        self.workers = workers or min(8, max(1, os.cpu_count() or 1))
        self.pool = None  # type: typing.Any
        self.zpool = None  # type: typing.Any
        self.zdec = None  # type: typing.Any
        #: (item, offset, size): a future, bytes or _ZEROS; the head stays until written
        self.queue = deque()  # type: typing.Any
        self.queued = 0  # data bytes the queue decodes to (or about: 4x a frame unsized)
        self.cond = threading.Condition()
        self.error = None  # type: typing.Optional[BaseException]
        self.closed = False
        self.thread = None  # type: typing.Any

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
            self._put(self.zpool.submit(self._unstream, payload,
                                        bool(flags & FLAG_ZSTREAM_FIRST)),
                      offset, 4 * len(payload))
        elif not flags & CODEC_FLAGS:
            self._put(payload, offset, len(payload))
        else:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor
                self.pool = ThreadPoolExecutor(self.workers)
            size = packed_length(flags, payload) or 4 * len(payload)
            self._put(self.pool.submit(decode_payload, flags, payload), offset, size)

    def hole(self, offset, n):
        # type: (int, int) -> None
        """[offset, offset + n) reads as zeros, in its turn among the frames."""
        self._put(_ZEROS, offset, n)

    def _put(self, item, offset, size):
        counted = 0 if item is _ZEROS else size
        with self.cond:
            self._raise()
            self.queue.append((item, offset, size))
            self.queued += counted
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="vmigrate-writer")
                self.thread.daemon = True
                self.thread.start()
            self.cond.notify_all()
            # bounded in bytes (joined frames decode to 16 MiB each) and in frames
            while self.error is None and len(self.queue) > 1 and (
                    self.queued > UNPACK_BYTES or len(self.queue) > ENTRIES):
                self.cond.wait()
            self._raise()

    def _raise(self):
        if self.error is not None:
            raise self.error

    def drain(self):
        """Return once every frame queued is written (raise what failed instead)."""
        with self.cond:
            while self.queue and self.error is None:
                self.cond.wait()
            self._raise()

    def _run(self):
        while True:
            with self.cond:
                while not self.queue and not self.closed:
                    self.cond.wait()
                if not self.queue:
                    return
                item, offset, size = self.queue[0]
            try:
                if item is _ZEROS:
                    self.zeros(offset, size)
                else:
                    self.write(item if isinstance(item, bytes) else item.result(), offset)
            except BaseException as exc:  # noqa - raised in the stream's loop
                with self.cond:
                    self.error = exc
                    self.queue.clear()
                    self.queued = 0
                    self.cond.notify_all()
                return
            with self.cond:
                if self.queue:  # (close() may have cleared it meanwhile)
                    self.queue.popleft()
                    self.queued -= 0 if item is _ZEROS else size
                self.cond.notify_all()

    def _unstream(self, payload, first):
        try:
            return self.zdec.decode(payload, first)
        except Exception as exc:  # CodecFailed, zstd.ZstdError: the stream is corrupt
            raise ProtocolError("cannot decompress a stream piece: {}".format(exc)) from exc

    def close(self):
        """Stop the threads (frames still queued are dropped: the stream failed).  The
        writer is waited for: the file's descriptor is closed after this, and a write
        still under way must not land in another file given the same number."""
        with self.cond:
            self.closed = True
            head = list(self.queue)[:1]
            self.queue.clear()
            self.queue.extend(head)  # the write under way, if any, ends; nothing after it
            self.queued = 0
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None
        if self.zpool is not None:
            self.zpool.submit(self.zdec.close)  # after the pieces still decoding
            self.zpool.shutdown(wait=False)
            self.zpool = None
