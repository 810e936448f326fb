"""Block digests: optional fast hashes when importable, stdlib ones always."""

import errno
import hashlib
import os

from .protocol import DIGEST_ENTRY
from .sparse import data_regions

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass


#: the host's libxxhash, where python has no xxhash module (ctypes, as agent/codeclib.py)
XXH_SONAMES = ("libxxhash.so.0", "libxxhash.so", "libxxhash.0.dylib")


def _xxh3_lib():
    """xxh3_128 through the host's libxxhash: the module's digest exactly (XXH128's
    canonical form, big-endian high then low 64 bits), so either side may run either.
    None where the host has no such library (or a pre-0.8 one without XXH3_128bits)."""
    try:
        import ctypes
        import struct
    except ImportError:  # pragma: no cover - a Python built without ctypes
        return None

    class Hash128(ctypes.Structure):
        _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]

    func = None
    for soname in XXH_SONAMES:
        try:
            func = ctypes.CDLL(soname).XXH3_128bits
            break
        except (OSError, AttributeError):
            continue
    if func is None:
        return None
    func.restype = Hash128
    func.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    pack = struct.Struct(">QQ").pack

    def digest(b):
        b = b if isinstance(b, bytes) else bytes(b)
        h = func(b, len(b))
        return pack(h.high64, h.low64)

    return digest


def _hashers():
    algos = []
    try:
        import xxhash  # optional accelerator, ~14 GB/s

        algos.append(("xxh3_128", lambda b: xxhash.xxh3_128(b).digest()))
    except ImportError:
        xxh = _xxh3_lib()
        if xxh is not None:
            algos.append(("xxh3_128", xxh))
    try:
        import blake3  # optional accelerator, cryptographic, ~4 GB/s

        algos.append(("blake3", lambda b: blake3.blake3(b).digest()))
    except ImportError:
        pass
    algos.append(("sha1", lambda b: hashlib.sha1(b).digest()))
    algos.append(("sha256", lambda b: hashlib.sha256(b).digest()))
    if hasattr(hashlib, "blake2b"):
        algos.append(("blake2b", lambda b: hashlib.blake2b(b, digest_size=32).digest()))
    algos.append(("md5", lambda b: hashlib.md5(b).digest()))
    return algos


def rank(algos, sample=256 * 1024, rounds=2):
    """``algos`` (name, func) with the stdlib digests ordered fastest first, as measured on
    this CPU now (SHA-NI makes sha256 as fast as sha1; without it md5 or blake2b may win);
    the optional accelerators (xxh3_128, blake3) stay first.  A few milliseconds."""
    import time

    buf = bytes(bytearray(range(256))) * (sample // 256)
    fast = [a for a in algos if a[0] in ("xxh3_128", "blake3")]
    timed = []
    for name, func in algos:
        if (name, func) in fast:
            continue
        best = None
        for _ in range(rounds):
            t = time.time()
            func(buf)
            took = time.time() - t
            best = took if best is None else min(best, took)
        timed.append((best, len(timed), name, func))
    return fast + [(name, func) for _t, _i, name, func in sorted(timed)]


HASHERS = rank(_hashers())
HASH_FUNCS = dict(HASHERS)


def digest_blocks(fd, extents, block, func, per_frame, send):
    """Digest the ``block``-sized blocks of ``extents`` (None: the whole file).

    Blocks follow the global block grid, whatever the allocation, so that both
    sides cut the same blocks; hole blocks are not read (their digest is
    computed once per length).  ``send(entries)`` gets the packed
    ``DIGEST_ENTRY + digest`` records, ``per_frame`` at a time.  Returns the
    number of blocks.
    """
    zero_digests = {}
    entries = []
    count = 0
    size = os.fstat(fd).st_size
    if extents is None:
        extents = [[0, size]]
    read_size = max(block, (4 << 20) // block * block)
    for start, length in extents:
        end = min(start + length, size)
        regions = data_regions(fd, start, end)
        ri = 0
        pos = start
        while pos < end:
            while ri < len(regions) and regions[ri][0] + regions[ri][1] <= pos:
                ri += 1
            if ri == len(regions) or regions[ri][0] >= min((pos // block + 1) * block, end):
                # the whole block is a hole: no read needed
                nxt = min((pos // block + 1) * block, end)
                if ri < len(regions):
                    # skip whole hole blocks up to the block holding the next data
                    nxt = max(nxt, min(regions[ri][0] // block * block, end))
                else:
                    nxt = end
                while pos < nxt:
                    bn = min((pos // block + 1) * block, nxt)
                    ln = bn - pos
                    d = zero_digests.get(ln)
                    if d is None:
                        d = zero_digests[ln] = func(bytes(ln))
                    entries.append(DIGEST_ENTRY.pack(pos, ln) + d)
                    pos = bn
            else:
                # read a run of blocks and hash them in place
                run_end = min(pos + read_size, end)
                run_end = max(min((run_end // block) * block, end), min((pos // block + 1) * block, end))
                buf = os.pread(fd, run_end - pos, pos)
                if len(buf) != run_end - pos:
                    raise OSError(errno.EIO, "short read at {}".format(pos))
                view = memoryview(buf)
                i = 0
                while pos < run_end:
                    bn = min((pos // block + 1) * block, run_end)
                    ln = bn - pos
                    entries.append(DIGEST_ENTRY.pack(pos, ln) + func(view[i:i + ln]))
                    i += ln
                    pos = bn
            if len(entries) >= per_frame:
                count += len(entries)
                send(b"".join(entries))
                entries = []
    if entries:
        count += len(entries)
        send(b"".join(entries))
    return count


class StreamDigester(object):
    """Block digests of what a read stream carries, cut as :func:`digest_blocks` cuts the
    same merged extents (the global block grid, clipped to each extent), so that certify
    need not read the frozen source a second time.  ``add`` takes the stream's frames in
    order (``data`` None: ``n`` zero bytes); ``send(entries)`` gets DIGESTS payloads."""

    def __init__(self, func, block, send, per_frame=2048, size=None):
        self.func, self.block, self.send, self.per_frame = func, block, send, per_frame
        #: ``size``: digest the whole ``[0, size)`` grid, a gap between frames being zeros
        #: (a seed streams the allocated areas; what it skips reads as zeros)
        self.size = size
        self.pos = 0
        self.start = None  # type: typing.Optional[int]
        self.end = 0
        self.parts = []  # type: typing.List[typing.Any]
        self.entries = []  # type: typing.List[bytes]
        self.zero = {}  # type: typing.Dict[int, bytes]
        self.count = 0

    def add(self, off, data, n):
        if self.size is not None:
            if off > self.pos:
                self._add(self.pos, None, off - self.pos)
            self.pos = off + n
        self._add(off, data, n)

    def _add(self, off, data, n):
        if self.start is not None and off != self.end:
            self._close()  # a gap: the extent ended inside a block
        view = memoryview(data) if data is not None else None
        pos, end = off, off + n
        while pos < end:
            if self.start is None:
                self.start = pos
            grid = (self.start // self.block + 1) * self.block
            take = min(grid, end) - pos
            self.parts.append(view[pos - off:pos - off + take] if view is not None else take)
            pos += take
            self.end = pos
            if pos == grid:
                self._close()

    def _close(self):
        parts, ln = self.parts, self.end - self.start
        if all(isinstance(p, int) for p in parts):
            d = self.zero.get(ln)
            if d is None:
                d = self.zero[ln] = self.func(bytes(ln))
        elif len(parts) == 1:
            d = self.func(parts[0])
        else:
            d = self.func(b"".join(bytes(p) if isinstance(p, int) else p for p in parts))
        self.entries.append(DIGEST_ENTRY.pack(self.start, ln) + d)
        self.start, self.parts = None, []
        if len(self.entries) >= self.per_frame:
            self.flush()

    def flush(self):
        if self.entries:
            self.count += len(self.entries)
            self.send(b"".join(self.entries))
            self.entries = []

    def finish(self):
        if self.size is not None and self.pos < self.size:
            self.add(self.size, None, 0)
        if self.start is not None:
            self._close()
        self.flush()
