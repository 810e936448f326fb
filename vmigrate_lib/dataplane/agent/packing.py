"""Frames out in order, DATA compressed on a thread pool, and compression only where it pays.

zlib and zstandard release the GIL while they work, so several threads compress several
chunks at once (an ESXi host has many cores; one core of zlib -1 is below 1 Gbit/s).
Like zstd's ``--adapt``, the packer measures what it delivers: windows of chunks sent
compressed and, when the codec held the stream back (the sender waited for its results
for a fifth of the window or more), a window sent as is; the faster mode (disk bytes per
second, the link and the codec both counted) carries on.  While the codec keeps ahead of
the link nothing is probed: sending as is could only be slower.  A chunk that does not
shrink by 10% goes as it is; MISSES of them in a row pause compression for a while (one
incompressible file in a disk of text does not stop it).  Python 3.5, stdlib only.
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

WINDOW = 16  #: chunks per measured window
PROBE_EVERY = 8  #: compressed windows between two windows sent as is
PAUSE = 16  #: chunks sent as they are after MISSES in a row that did not shrink
MISSES = 3
CODEC_BOUND = 0.2  #: a window whose sender waited this share of it for the codec
#: chunks a probe sends as they are before its rate counts: the first ones fill the
#: buffers the compressed stream left empty (pipe, ssh's channel window, the socket's)
#: at memory speed, and would make sending as is look faster than the link
WARM = 8


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
        self.raw_window = False  # this window sends as is
        self.left = 1  # windows left before the mode changes (the first is short)
        self.probing = False
        self.rates = {True: 0.0, False: 0.0}  # disk bytes/s: as is, compressed
        self.win = [0, 0, 0.0, 0.0]  # chunks, disk bytes, start, seconds waiting for the codec
        self.misses = 0  # chunks in a row that did not shrink
        self.warm = 0  # chunks of the probe still to send before its window counts
        self.stats = {"packed": 0, "raw": 0, "no_gain": 0, "off_for_rate": 0, "wire": 0}

    def emit(self, ftype, payload, arg):
        fut = None
        if ftype == DATA and self.func is not None and len(payload) >= 4096:
            if self.skip or self.raw_window:
                self.skip = max(0, self.skip - 1)
            else:
                if self.pool is None:
                    from concurrent.futures import ThreadPoolExecutor
                    self.pool = ThreadPoolExecutor(self.workers)
                fut = self.pool.submit(self.func, payload, self.level)
        self.queue.append((ftype, payload, arg, fut))
        depth = self.workers * 2 if self.func is not None else 0
        while len(self.queue) > depth:
            self._send_one()

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
            if not fut.done():
                t = time.time()
                out = fut.result()
                self.win[3] += time.time() - t
            out = fut.result()
            if len(out) > size * 0.9:
                self.misses += 1
                if self.misses >= MISSES:
                    self.skip, self.misses = PAUSE, 0
                self.stats["no_gain"] += 1
            else:
                payload, flags, self.misses = out, self.flag, 0
        if ftype == DATA:
            self.stats["packed" if flags else "raw"] += 1
        self.send(ftype, payload, arg, flags)
        self.stats["wire"] += len(payload) + HEADER_SIZE
        if ftype == DATA and self.func is not None:
            self._measure(size)

    def _measure(self, size):
        """Count a DATA chunk into the window; at its end choose the next window's mode.

        A long run in one mode is followed by a one-window probe of the other; after the
        probe, the faster of the two measured rates runs for the next PROBE_EVERY windows."""
        if self.warm:
            self.warm -= 1
            return
        win = self.win
        if win[0] == 0:
            win[2] = time.time()
        win[0] += 1
        win[1] += size
        if win[0] < WINDOW:
            return
        took = max(time.time() - win[2], 1e-6)
        self.rates[self.raw_window] = win[1] / took
        self.win = [0, 0, 0.0, 0.0]
        self.left -= 1
        if not self.raw_window and not self.probing and win[3] < CODEC_BOUND * took:
            self.left = max(self.left, 1)  # the link holds the stream back: no probe
            return
        if self.left > 0:
            return
        if self.probing:
            self.raw_window = self.rates[True] > self.rates[False]
            if self.raw_window:
                self.stats["off_for_rate"] += 1
            self.left, self.probing = PROBE_EVERY, False
        else:
            self.raw_window, self.left, self.probing = not self.raw_window, 1, True
            self.warm = WARM if self.raw_window else 0


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
