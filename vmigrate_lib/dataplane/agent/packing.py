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
window blocked sending) and falls back when the codec falls behind (the sender waited
for it CODEC_BOUND of a window): on a slow link a smaller frame is worth more CPU.  With
zstd, contiguous chunks go joined in one long-window frame whose long-distance matching
goes off after the level has come down and comes back on before it rises
(:class:`Packer`).  Python 3.5, stdlib only.
"""

import os
import time
from collections import deque

from .protocol import (
    CODEC_IMPL,
    CODECS,
    DATA,
    FLAG_ZSTREAM,
    FLAG_ZSTREAM_FIRST,
    HEADER_SIZE,
    HOLE,
    LENGTH,
    LONG_WINDOW,
    ZSTREAM,
    codec_label,
)

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

PAUSE = 8  #: chunks sent as they are after MISSES in a row that did not shrink ...
PAUSE_MAX = 64  #: ... doubled at each such run until a chunk shrinks again
MISSES = 3
LEVEL_WINDOW = 32  #: DATA chunks between two level decisions
LEVEL_UP = 5  #: zstd levels the packer may add to the one asked (16 MiB frames of the
#: share image: level 1 86 MiB, 3 83, 6 81; level 6 runs ~100 MB/s per core, 3x what a
#: 100 Mbit/s link carries of it).  No higher: on the 234 MiB of data of the 384 MiB share
#: image (bench/frame_cost.py --levels) level 6 gives 79.1 MiB for 1.55 CPU s, 9 78.2 for
#: 2.52, 12 77.9 for 5.8; a climb by rungs to 9 saved <= 1 MiB of 81 at 100 Mbit/s
#: (2026-12-02, bench/README.md)
LINK_BOUND = 0.8
CODEC_BOUND = 0.1
IDLE_CORES = 1.0  #: matching and the level rise only while this host has a core idle
BEHIND = 3  #: chunks per pool thread still to compress beyond which a chunk goes as is
SPAN_MAX = 16 << 20  #: contiguous chunks joined in one long-window frame, up to this
QUEUE_BYTES = 1 << 20  #: data bytes queued per slot of the queue's depth
STREAM_WLOG = 26  #: a push's one zstd stream keeps a 64 MiB window (both ends hold it:
#: ~70 MiB more than 16 MiB frames on the sender, ~64 MiB on the receiver, of the 800 MB
#: an ESXi shell's processes get by default per the XSIBackup vendor, 33hops.com "VMware
#: ESXi memory constraints"); 2^27 saved 0.6 MiB more of 76.5 (bench/README.md)


def window_log(n):
    # type: (int) -> int
    """The zstd window (log2) that spans ``n`` bytes: at least 2^20, at most 2^24."""
    return min(24, max(20, (n - 1).bit_length()))


class Packer(object):
    """``emit(type, payload, arg)`` in order to ``send(type, payload, arg, flags, size)``
    (``size``: the data bytes a DATA or HOLE frame covers, whatever its payload's length).

    Where the codec has a long window (:data:`LONG_WINDOW`), contiguous DATA chunks are
    joined into one frame of up to 16 MiB: one zstd frame over 16 MiB with long-distance
    matching (LDM) finds the repeats a 1 MiB frame cannot (the share image over 100
    Mbit/s: 104 -> 86 MiB at level 1).  LDM costs: on the 941 MiB of the 1.5 GiB share
    image, level 1 in 16 MiB frames, one core, 256 MiB out for 3.6-4.4 CPU s with it, 276
    MiB for 2.3 s without, and 1 MiB frames 295 MiB for 2.6 s (bench/README.md).  So
    while the codec is behind, LDM goes off (after the level has come down) and the
    frames stay joined: cheaper and smaller than a frame per chunk; LDM comes back on
    before the level rises.  With ``stream`` (the receiver decodes FLAG_ZSTREAM), the step
    after LDM is one zstd stream across the joined frames, at the top level (see
    protocol.ZSTREAM); it ends, on its one thread, when the codec falls behind."""

    def __init__(self, codec, level, send, workers=None, stream=False):
        # type: (typing.Optional[str], typing.Optional[int], typing.Any, typing.Optional[int], bool) -> None
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
        self.long = LONG_WINDOW.get(codec) if codec else None
        #: 0: a frame per chunk (data that does not shrink); else join contiguous chunks
        #: up to this.  A zstd with a long window starts at SPAN_MAX with LDM on (starting
        #: small and rising with the link, the bench at 100 Mbit/s sent 81-93 MiB from run
        #: to run, as the windows fell; from the top, 80-84)
        self.span = SPAN_MAX if self.long is not None else 0
        self.ldm = self.long is not None  #: long-distance matching in joined frames
        #: ``stream``: the receiver decodes a zstd stream (FLAG_ZSTREAM): joined chunks go
        #: through one stream whose window spans the frames before (see _adapt)
        self.zmake = ZSTREAM[0] if stream and codec == "zstd" and ZSTREAM else None
        self.streaming = False
        self.zs = None  # type: typing.Any
        self.zpool = None  # type: typing.Any
        self.zjumped = False  # the level jumped to the top when the stream first began ...
        self.zfrom = None  # type: typing.Optional[int]  # ... from this, until it ended
        self.span_back = 0  #: the span left for data that did not shrink, to come back to
        self.joined = []  # type: typing.List[bytes]
        self.joined_at = 0
        self.joined_len = 0
        self.workers = workers or min(8, max(1, os.cpu_count() or 1))
        self.pool = None  # type: typing.Any
        self.queue = deque()  # type: typing.Any
        self.queued = 0  # data bytes in the queue
        self.skip = 0
        self.misses = 0  # chunks in a row that did not shrink
        self.pause = PAUSE  # the next pause's length
        self.waited = False  # the last frame sent had to wait for the codec
        #: zstd only: the level moves between the one asked and LEVEL_UP above
        self.base = self.level
        self.top = self.level + LEVEL_UP if codec == "zstd" else self.level
        self.lwin = [0, 0.0, 0.0, 0.0]  # chunks, start, seconds sending, waiting for the codec
        self.cpu_mark = None  # type: typing.Any
        #: off_for_rate: chunks sent as they are because the codec was behind;
        #: ldm_off: chunks joined in frames without long-distance matching (codec behind);
        #: stream: chunks sent through the push's one zstd stream
        self.stats = {"packed": 0, "raw": 0, "no_gain": 0, "off_for_rate": 0, "wire": 0,
                      "level_max": self.level, "span_max": 0, "ldm_off": 0, "stream": 0}

    def emit(self, ftype, payload, arg):
        if self.span and ftype == DATA:
            if self.joined and arg == self.joined_at + self.joined_len \
                    and self.joined_len + len(payload) <= self.span:
                self.joined.append(payload)
                self.joined_len += len(payload)
                return
            self._send_joined()
            if len(payload) < self.span:
                self.joined, self.joined_at, self.joined_len = [payload], arg, len(payload)
                return
        elif self.joined:
            self._send_joined()
        self._queue(ftype, payload, arg, 1)

    def _send_joined(self):
        if not self.joined:
            return
        parts, at = self.joined, self.joined_at
        self.joined, self.joined_len = [], 0
        self._queue(DATA, parts[0] if len(parts) == 1 else b"".join(parts), at, len(parts))

    def _queue(self, ftype, payload, arg, chunks):
        fut = None
        flag = self.flag
        if ftype == DATA and self.func is not None and len(payload) >= 4096:
            if self.skip:  # a pause counts chunks: a joined frame uses several
                self.skip = max(0, self.skip - chunks)
            elif self._behind():
                self.stats["off_for_rate"] += chunks
            else:
                if self.pool is None:
                    from concurrent.futures import ThreadPoolExecutor
                    self.pool = ThreadPoolExecutor(self.workers)
                if chunks > 1 and self.streaming:
                    fut, flag = self._stream_piece(payload)
                    self.stats["stream"] += chunks
                elif chunks > 1:
                    fut = self.pool.submit(self.long, payload, self.level,
                                           window_log(len(payload)), self.ldm)
                    self.stats["span_max"] = max(self.stats["span_max"], len(payload))
                    if not self.ldm:
                        self.stats["ldm_off"] += chunks
                else:
                    fut = self.pool.submit(self.func, payload, self.level)
        self.queue.append((ftype, payload, arg, fut, chunks, flag))
        self.queued += len(payload) if ftype == DATA else 0
        depth = self.workers * (BEHIND + 1) if self.func is not None else 0
        # bounded in bytes too (joined frames are up to 16 MiB each), but two spans are
        # kept: a joined frame compresses while the one before it is on the wire
        cap = max(depth * QUEUE_BYTES, 2 * self.span)
        while len(self.queue) > depth or (len(self.queue) > 1 and self.queued > cap):
            self._send_one()

    def _stream_piece(self, payload):
        """Compress ``payload`` as the next piece of the stream (a new one when none runs),
        on the stream's own thread: a piece needs the ones before it."""
        flag = FLAG_ZSTREAM
        if self.zs is None:
            self.zs = self.zmake(self.level, STREAM_WLOG, True)
            flag |= FLAG_ZSTREAM_FIRST
        if self.zpool is None:
            from concurrent.futures import ThreadPoolExecutor
            self.zpool = ThreadPoolExecutor(1)
        return self.zpool.submit(self.zs.compress, payload), flag

    def _end_stream(self):
        """No more pieces of this stream: its context is freed after the ones queued."""
        self.streaming = False
        if self.zs is not None:
            self.zpool.submit(self.zs.close)
            self.zs = None

    def _behind(self):
        """Did the sender wait for the codec, and has the pool BEHIND chunks per thread
        still to compress?"""
        if not self.waited:
            return False
        todo = 0
        for item in self.queue:
            if item[3] is not None and not item[3].done():
                todo += 1  # tasks: a joined frame is one, as a chunk is
        return todo >= self.workers * BEHIND

    def finish(self):
        """Send what is queued; stop the threads."""
        try:
            self._send_joined()
            while self.queue:
                self._send_one()
        finally:
            self._stop()

    def abort(self):
        """Drop what is queued (the stream failed); stop the threads."""
        self.joined, self.joined_len = [], 0
        self.queue.clear()
        self.queued = 0
        self._stop()

    def _stop(self):
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None
        self._end_stream()
        if self.zpool is not None:
            self.zpool.shutdown(wait=False)
            self.zpool = None

    def _send_one(self):
        ftype, payload, arg, fut, chunks, flag = self.queue.popleft()
        flags = 0
        size = len(payload)
        if ftype == DATA:
            self.queued -= size
        wait = 0.0
        if fut is not None:
            self.waited = not fut.done()
            t = time.time()
            out = fut.result()
            wait = time.time() - t if self.waited else 0.0
            if flag & FLAG_ZSTREAM:  # the stream holds it: sent as made, shrunk or not
                payload, flags = out, flag
            if len(out) > size * 0.9:
                self.misses += chunks  # a joined frame that does not shrink: MISSES at once
                if chunks > 1 and self.span:
                    # incompressible data: try it a chunk at a time (a 16 MiB frame of
                    # random data costs 16 chunks of codec time per try); the span comes
                    # back with the first chunk that shrinks
                    self.span_back, self.span = self.span, 0
                if self.misses >= MISSES:
                    self.skip, self.misses = self.pause, 0
                    self.pause = min(self.pause * 2, PAUSE_MAX)
                self.stats["no_gain"] += chunks
            else:
                payload, flags, self.misses, self.pause = out, flag, 0, PAUSE
                if self.span_back:
                    self.span, self.span_back = max(self.span, self.span_back), 0
        if ftype == DATA:
            self.stats["packed" if flags else "raw"] += chunks
        elif ftype == HOLE:
            size = LENGTH.unpack(payload)[0]
        t = time.time()
        self.send(ftype, payload, arg, flags, size)
        self.stats["wire"] += len(payload) + HEADER_SIZE
        if ftype == DATA and (self.top > self.base or self.long is not None):
            self._adapt(t - wait, wait, chunks)

    def _adapt(self, t, wait, chunks):
        """Count ``chunks`` sent after waiting ``wait`` s for the codec from ``t``; every
        LEVEL_WINDOW chunks move the level or long-distance matching: up while the link
        holds the stream back, down when the sender waited for the codec CODEC_BOUND of
        the time (a joined frame's short wait when the queue has just refilled is not the
        codec falling behind)."""
        win = self.lwin
        now = time.time()
        if win[0] == 0:
            win[1] = t
            self.cpu_mark = cpu_sample()
        win[0] += chunks
        win[2] += now - t - wait
        win[3] += wait
        if win[0] < LEVEL_WINDOW:
            return
        if win[3] >= CODEC_BOUND * (now - win[1]):
            if self.streaming:  # back to frames compressed side by side ...
                self._end_stream()
                if self.zfrom is not None:  # ... at the level before the jump: a fast
                    # link's one slow window made it (bench, 1 Gbit/s: level 6 on one
                    # thread, then a level down a window on the pool)
                    self.level, self.zfrom = self.zfrom, None
            elif self.level > self.base:
                self.level -= 1
            else:
                self.ldm = False
        elif win[2] >= LINK_BOUND * (now - win[1]) and self._idle_core():
            if self.long is not None and not self.ldm:
                self.ldm = True
            elif self.zmake is not None and not self.streaming and self.span:
                # (only while chunks are joined: a stream carries joined frames only; data
                # that goes a chunk at a time climbs a level a window, as before)
                self.streaming = True
                if not self.zjumped:  # a stream keeps its level: the link is the limit
                    self.zjumped, self.zfrom, self.level = True, self.level, self.top
                    self.stats["level_max"] = max(self.stats["level_max"], self.level)
            elif self.level < self.top and not self.streaming:
                self.level += 1
                self.stats["level_max"] = max(self.stats["level_max"], self.level)
        self.lwin = [0, 0.0, 0.0, 0.0]

    def _idle_core(self):
        """Had this host a core idle over the window (where /proc/stat tells; else yes)?
        A sender blocked sending may wait for a link or for a receiver starved of CPU on
        the same cores (the bench's 2-core machine runs both agents, sshd and ssh: there
        level 3 cost the source 1.0-1.3 CPU s more per share seed for a few % of wire)."""
        idle = idle_cores(self.cpu_mark, cpu_sample())
        return idle is None or idle >= IDLE_CORES


def cpu_sample(path="/proc/stat"):
    # type: (str) -> typing.Optional[typing.Tuple[float, float, int]]
    """(idle, total) jiffies of all CPUs and their count, or None where the host has no
    /proc/stat (ESXi)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("ascii", "replace").splitlines()
    except (OSError, IOError):
        return None
    head = lines[0].split() if lines else []
    if not head or head[0] != "cpu" or len(head) < 5:
        return None
    vals = [float(v) for v in head[1:9]]  # user nice system idle iowait irq softirq steal
    ncpu = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return vals[3] + (vals[4] if len(vals) > 4 else 0.0), sum(vals), max(1, ncpu)


def idle_cores(before, after):
    # type: (typing.Any, typing.Any) -> typing.Optional[float]
    """Cores idle on average between two :func:`cpu_sample` (None: not known)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * after[2]
