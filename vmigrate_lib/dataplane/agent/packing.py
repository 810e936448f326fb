"""Frames out in order, DATA compressed on a thread pool, and compression only where it pays.

zlib, zstandard and the host's libzstd (ctypes) release the GIL while they work, so several
threads compress several chunks at once (an ESXi host has many cores; one core of zlib -1
is below 1 Gbit/s).  Like zstd's ``--adapt``, the packer compresses what the codec keeps
up with and sends the rest as it is: when the sender last had to wait for the codec and
the pool still has BEHIND chunks per thread to do, a new chunk goes as it is (the codec is
the bottleneck: the link would wait for it), while a link that holds the stream back
gives the pool time and every chunk goes compressed.  No wall-clock windows are compared: a disk's regions differ too
much (metadata, text, compressed files, zeros) and the link's buffers absorb megabytes,
so short windows measured one mode against the other wrongly (bench/README.md).  A chunk
that does not shrink by 10% goes as it is; MISSES of them in a row pause compression for
PAUSE chunks, twice as many after each further run (up to PAUSE_MAX: random data costs
the codec little), PAUSE again once a chunk shrinks (one incompressible file in a disk of
text does not stop it).  And as ``--adapt`` does, zstd's level rises (up to LEVEL_UP above
the one asked) while the link holds the stream back (the sender spent LINK_BOUND of a
window blocked sending, never waiting for the codec), and falls back when the codec falls
behind: on a slow link a smaller frame is worth more CPU.  Python 3.5, stdlib only.
"""

import os
import time
from collections import deque

from .protocol import (
    CODEC_FLAGS,
    CODEC_IMPL,
    CODECS,
    DATA,
    HEADER_SIZE,
    codec_label,
    decode_payload,
)

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

PAUSE = 8  #: chunks sent as they are after MISSES in a row that did not shrink ...
PAUSE_MAX = 64  #: ... doubled at each such run until a chunk shrinks again
MISSES = 3
LEVEL_WINDOW = 32  #: DATA chunks between two level decisions
LEVEL_UP = 2  #: zstd levels the packer may add to the one asked
LINK_BOUND = 0.8
BEHIND = 3  #: chunks per pool thread still to compress beyond which a chunk goes as is


class Packer(object):
    """``emit(type, payload, arg)`` in order to ``send(type, payload, arg, flags)``."""

    def __init__(self, codec, level, send, workers=None):
        # type: (typing.Optional[str], typing.Optional[int], typing.Any, typing.Optional[int]) -> None
        self.send = send
        self.codec = codec_label(codec) if codec else ""  #: as the journal names it
        #: a binary compresses (one process per frame): the reader sends bigger frames
        self.by_binary = bool(codec) and CODEC_IMPL.get(codec) == "bin"
        self.func = None
        self.flag = 0
        self.level = 0
        if codec:
            if codec not in CODECS:
                raise ValueError("compression {!r} not available here".format(codec))
            self.flag, self.func, _dec = CODECS[codec]
            self.level = level if level is not None else 1
        self.workers = workers or min(8, max(1, os.cpu_count() or 1))
        self.pool = None  # type: typing.Any
        self.queue = deque()  # type: typing.Any
        self.skip = 0
        self.misses = 0  # chunks in a row that did not shrink
        self.pause = PAUSE  # the next pause's length
        self.waited = False  # the last frame sent had to wait for the codec
        #: zstd only: the level moves between the one asked and LEVEL_UP above
        self.base = self.level
        self.top = self.level + LEVEL_UP if codec == "zstd" else self.level
        self.lwin = [0, 0.0, 0.0, 0]  # chunks, start, seconds sending, waits for the codec
        #: off_for_rate: chunks sent as they are because the codec was behind
        self.stats = {"packed": 0, "raw": 0, "no_gain": 0, "off_for_rate": 0, "wire": 0,
                      "level_max": self.level}

    def emit(self, ftype, payload, arg):
        fut = None
        if ftype == DATA and self.func is not None and len(payload) >= 4096:
            if self.skip:
                self.skip -= 1
            elif self._behind():
                self.stats["off_for_rate"] += 1
            else:
                if self.pool is None:
                    from concurrent.futures import ThreadPoolExecutor
                    self.pool = ThreadPoolExecutor(self.workers)
                fut = self.pool.submit(self.func, payload, self.level)
        self.queue.append((ftype, payload, arg, fut))
        depth = self.workers * (BEHIND + 1) if self.func is not None else 0
        while len(self.queue) > depth:
            self._send_one()

    def _behind(self):
        """Did the sender wait for the codec, and has the pool BEHIND chunks per thread
        still to compress?"""
        if not self.waited:
            return False
        todo = 0
        for item in self.queue:
            if item[3] is not None and not item[3].done():
                todo += 1
        return todo >= self.workers * BEHIND

    def finish(self):
        """Send what is queued; stop the threads."""
        try:
            while self.queue:
                self._send_one()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=False)
                self.pool = None

    def _send_one(self):
        ftype, payload, arg, fut = self.queue.popleft()
        flags = 0
        size = len(payload)
        if fut is not None:
            self.waited = not fut.done()
            out = fut.result()
            if len(out) > size * 0.9:
                self.misses += 1
                if self.misses >= MISSES:
                    self.skip, self.misses = self.pause, 0
                    self.pause = min(self.pause * 2, PAUSE_MAX)
                self.stats["no_gain"] += 1
            else:
                payload, flags, self.misses, self.pause = out, self.flag, 0, PAUSE
        if ftype == DATA:
            self.stats["packed" if flags else "raw"] += 1
        t = time.time()
        self.send(ftype, payload, arg, flags)
        self.stats["wire"] += len(payload) + HEADER_SIZE
        if ftype == DATA and self.top > self.base:
            self._adapt_level(t, fut is not None and self.waited)

    def _adapt_level(self, t, waited):
        """Count a DATA frame sent at ``t``; every LEVEL_WINDOW frames move the level."""
        win = self.lwin
        now = time.time()
        if win[0] == 0:
            win[1] = t
        win[0] += 1
        win[2] += now - t
        win[3] += 1 if waited else 0
        if win[0] < LEVEL_WINDOW:
            return
        if win[3]:
            self.level = max(self.level - 1, self.base)
        elif win[2] >= LINK_BOUND * (now - win[1]) and self.level < self.top:
            self.level += 1
            self.stats["level_max"] = max(self.stats["level_max"], self.level)
        self.lwin = [0, 0.0, 0.0, 0]


class Unpacker(object):
    """The write side: compressed DATA frames decoded on a thread pool (a codec binary or
    zstandard works without the GIL), ``write(data, offset)`` called in frame order.

    ``drain`` before a HOLE, a FLUSH or END: a checkpoint covers every frame before it."""

    def __init__(self, write, workers=None):
        self.write = write
        self.workers = workers or min(8, max(1, os.cpu_count() or 1))
        self.pool = None  # type: typing.Any
        self.queue = deque()  # type: typing.Any

    def add(self, flags, payload, offset):
        # type: (int, bytes, int) -> None
        if not flags & CODEC_FLAGS:
            if not self.queue:
                self.write(payload, offset)
                return
            self.queue.append((payload, offset))
        else:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor
                self.pool = ThreadPoolExecutor(self.workers)
            self.queue.append((self.pool.submit(decode_payload, flags, payload), offset))
        while len(self.queue) > self.workers * 2:
            self._write_one()

    def drain(self):
        while self.queue:
            self._write_one()

    def _write_one(self):
        item, offset = self.queue.popleft()
        self.write(item if isinstance(item, bytes) else item.result(), offset)

    def close(self):
        """Stop the threads (frames still queued are dropped: the stream failed)."""
        self.queue.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None
