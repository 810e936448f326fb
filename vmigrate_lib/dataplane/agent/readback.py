"""The destination's certify digests, read back from the ranges it wrote, during the copy.

A write stream armed with ``digest`` hands every range it has written (DATA and HOLE
frames, in order) to a thread that reads it back from the file and digests it on the
certify block grid (:class:`StreamDigester`), so that certify need not read the
destination after the copy, and a write at a wrong offset is still caught: what is
digested is what the file holds at the right offsets, not what came over the wire.  With
``size`` (a seed) the gaps between frames are read back too (holes are not read: they
are zeros), so the digests cover ``[0, size)`` as a whole-disk hash pass does.
The digests go out as DIGESTS frames right before the stream's END.  Python 3.5, stdlib.
"""

import errno
import os
import threading
from collections import deque

from .hashing import HASH_FUNCS, StreamDigester
from .sparse import data_and_holes

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

READ = 4 * 1024 * 1024  #: read-back size


class ReadBack(object):
    """``written(off, n)`` after each range is written; ``finish()`` returns the DIGESTS
    payloads (the thread's error, if any, is raised there)."""

    def __init__(self, fd, want):
        func = HASH_FUNCS.get(want["algorithm"])
        if func is None:
            raise ValueError("hash algorithm {!r} not available here".format(want["algorithm"]))
        self.fd = fd
        self.size = want.get("size")
        self.frames = []  # type: typing.List[bytes]
        self.dig = StreamDigester(func, int(want["block"]), self.frames.append)
        self.pos = 0  # whole mode: read back up to here
        self.todo = deque()  # type: typing.Any
        self.cond = threading.Condition()
        self.done = False
        self.error = None  # type: typing.Optional[BaseException]
        self.thread = threading.Thread(target=self._run, name="vmigrate-readback")
        self.thread.daemon = True
        self.thread.start()

    def written(self, off, n):
        with self.cond:
            self.todo.append((off, n))
            self.cond.notify()

    def finish(self):
        with self.cond:
            self.done = True
            self.cond.notify()
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.frames

    def close(self):
        """Stop without finishing (the stream failed)."""
        with self.cond:
            self.todo.clear()
            self.done = True
            self.cond.notify()

    def _run(self):
        try:
            while True:
                with self.cond:
                    while not self.todo and not self.done:
                        self.cond.wait()
                    if not self.todo:
                        break
                    off, n = self.todo.popleft()
                self._range(off, n)
            if self.size is not None and self.pos < self.size:
                self._range(self.size, 0)
            self.dig.finish()
        except BaseException as exc:  # noqa - reported by finish()
            self.error = exc

    def _range(self, off, n):
        if self.size is not None and off > self.pos:
            self._read(self.pos, off)  # a gap (the source's unallocated area): read it back
        self._read(off, off + n)
        self.pos = max(self.pos, off + n)

    def _read(self, start, end):
        for kind, s, n in data_and_holes(self.fd, start, end):
            if kind == "hole":
                self.dig.add(s, None, n)
                continue
            pos = s
            while pos < s + n:
                want = min(READ, s + n - pos)
                buf = os.pread(self.fd, want, pos)
                if len(buf) != want:
                    raise OSError(errno.EIO, "short read-back at {}".format(pos))
                self.dig.add(pos, buf, want)
                pos += want
