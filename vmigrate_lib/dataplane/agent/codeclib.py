"""zstd and lz4 through the host's shared libraries (``libzstd.so.1``, ``liblz4.so.1``).

Where python has no ``zstandard`` module (ESXi's, most hosts') but the host has the
libraries, ``ctypes`` calls them in this process: no process per frame (``codecbin``),
and ctypes releases the GIL during the foreign call, so the packer's threads compress on
several cores at once.  The frames are the tools' formats: a zstd frame (its content
size written by ``ZSTD_compressCCtx``) and an lz4 *frame* (``LZ4F_compressFrame``, what the
``lz4`` tool writes and reads), so a peer that runs the tool or the module decodes them,
and frames from a tool (no content size) are decoded by the streaming calls.
The libraries are opened by soname through the dynamic loader (no ``find_library``: it
runs ``ldconfig`` or ``gcc`` at every agent start).  Python 3.5, stdlib only.
"""

import ctypes
import threading

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

SONAMES = {
    "zstd": ("libzstd.so.1", "libzstd.so", "libzstd.1.dylib"),
    "lz4": ("liblz4.so.1", "liblz4.so", "liblz4.1.dylib"),
}
LIMIT = 64 * 1024 * 1024  #: the largest payload a frame carries (protocol.MAX_PAYLOAD)
PART = 4 * 1024 * 1024  #: output step when a frame does not say its size
_size = ctypes.c_size_t
_ptr = ctypes.c_void_p


class CodecFailed(Exception):
    """The library refused the data (corrupt or truncated frame, output too large)."""


def load(name):
    """The codec's library, or None where this host has none (or too old a one)."""
    for soname in SONAMES[name]:
        try:
            lib = ctypes.CDLL(soname)
            return _ZSTD_SIG(lib) if name == "zstd" else _LZ4_SIG(lib)
        except (OSError, AttributeError):  # absent, or lacking a call we use
            continue
    return None


def _sig(lib, fname, restype, argtypes):
    func = getattr(lib, fname)
    func.restype = restype
    func.argtypes = argtypes
    return func


def _ZSTD_SIG(lib):
    for fname, res, args in (
            ("ZSTD_compressBound", _size, [_size]),
            ("ZSTD_isError", ctypes.c_uint, [_size]),
            ("ZSTD_getErrorName", ctypes.c_char_p, [_size]),
            ("ZSTD_createCCtx", _ptr, []),
            ("ZSTD_compressCCtx", _size, [_ptr, _ptr, _size, ctypes.c_char_p, _size, ctypes.c_int]),
            ("ZSTD_getFrameContentSize", ctypes.c_ulonglong, [ctypes.c_char_p, _size]),
            ("ZSTD_createDCtx", _ptr, []),
            ("ZSTD_decompressDCtx", _size, [_ptr, _ptr, _size, ctypes.c_char_p, _size]),
            ("ZSTD_createDStream", _ptr, []),
            ("ZSTD_initDStream", _size, [_ptr]),
            ("ZSTD_decompressStream", _size, [_ptr, ctypes.c_void_p, ctypes.c_void_p]),
            ("ZSTD_freeDStream", _size, [_ptr])):
        _sig(lib, fname, res, args)
    try:  # the advanced API (libzstd >= 1.4.0): a long window for joined chunks
        for fname, res, args in (
                ("ZSTD_CCtx_reset", _size, [_ptr, ctypes.c_int]),
                ("ZSTD_CCtx_setParameter", _size, [_ptr, ctypes.c_int, ctypes.c_int]),
                ("ZSTD_compress2", _size, [_ptr, _ptr, _size, ctypes.c_char_p, _size]),
                ("ZSTD_compressStream2", _size, [_ptr, ctypes.c_void_p, ctypes.c_void_p,
                                                 ctypes.c_int]),
                ("ZSTD_freeCCtx", _size, [_ptr])):
            _sig(lib, fname, res, args)
        lib.vmigrate_long = True
    except AttributeError:
        lib.vmigrate_long = False
    return lib


def _LZ4_SIG(lib):
    for fname, res, args in (
            ("LZ4F_isError", ctypes.c_uint, [_size]),
            ("LZ4F_getErrorName", ctypes.c_char_p, [_size]),
            ("LZ4F_compressFrameBound", _size, [_size, _ptr]),
            ("LZ4F_compressFrame", _size, [_ptr, _size, ctypes.c_char_p, _size, _ptr]),
            ("LZ4F_createDecompressionContext", _size, [ctypes.POINTER(_ptr), ctypes.c_uint]),
            ("LZ4F_freeDecompressionContext", _size, [_ptr]),
            ("LZ4F_decompress", _size, [_ptr, _ptr, ctypes.POINTER(_size), _ptr,
                                        ctypes.POINTER(_size), _ptr])):
        _sig(lib, fname, res, args)
    return lib


class _Buffers(object):
    """Reusable native contexts and output buffers, one per concurrent caller (a pool's
    threads), so that a frame costs no allocation nor zero-fill of its output."""

    def __init__(self, make_ctx):
        self.make_ctx = make_ctx
        self.free = []  # type: typing.List[typing.Any]
        self.lock = threading.Lock()

    def take(self, need):
        with self.lock:
            item = self.free.pop() if self.free else None
        if item is None:
            item = [self.make_ctx(), None]
        if item[1] is None or len(item[1]) < need:
            item[1] = ctypes.create_string_buffer(need)
        return item

    def give(self, item):
        with self.lock:
            self.free.append(item)


class _InBuffer(ctypes.Structure):
    _fields_ = [("src", ctypes.c_char_p), ("size", _size), ("pos", _size)]


class _OutBuffer(ctypes.Structure):
    _fields_ = [("dst", _ptr), ("size", _size), ("pos", _size)]


def _zcheck(lib, code):
    if lib.ZSTD_isError(code):
        raise CodecFailed("zstd: " + lib.ZSTD_getErrorName(code).decode("ascii", "replace"))
    return code


class LibStream(object):
    """One zstd frame across a push's pieces, each flushed (``ZSTD_compressStream2`` with
    ZSTD_e_flush, 1): a piece decodes once every piece before it has, and its matches
    reach back a whole window across them (zstd.h: "ZSTD_e_flush: flush any data provided
    so far ... the frame will continue: any future data can still reference previously
    compressed data")."""

    def __init__(self, lib, level, wlog, ldm=True):
        self.lib = lib
        self.cctx = lib.ZSTD_createCCtx()
        self.out = None  # type: typing.Any
        for param, value in ((100, int(level)), (101, int(wlog)), (160, 1 if ldm else 0)):
            _zcheck(lib, lib.ZSTD_CCtx_setParameter(self.cctx, param, value))

    def compress(self, data):
        data = data if isinstance(data, bytes) else bytes(data)
        bound = self.lib.ZSTD_compressBound(len(data)) + 4096
        if self.out is None or len(self.out) < bound:
            self.out = ctypes.create_string_buffer(bound)
        inb = _InBuffer(data, len(data), 0)
        parts = []
        while True:
            outb = _OutBuffer(ctypes.cast(self.out, _ptr), len(self.out), 0)
            left = _zcheck(self.lib, self.lib.ZSTD_compressStream2(
                self.cctx, ctypes.byref(outb), ctypes.byref(inb), 1))
            parts.append(ctypes.string_at(self.out, outb.pos))
            if left == 0 and inb.pos == inb.size:
                return b"".join(parts)

    def close(self):
        if self.cctx:
            self.lib.ZSTD_freeCCtx(self.cctx)
            self.cctx = None


class LibUnstream(object):
    """The decoder of a :class:`LibStream`'s pieces, in their order (``first``: a new
    stream starts with this piece)."""

    def __init__(self, lib):
        self.lib = lib
        self.ds = lib.ZSTD_createDStream()
        self.out = ctypes.create_string_buffer(PART)

    def decode(self, data, first):
        data = data if isinstance(data, bytes) else bytes(data)
        if first:
            _zcheck(self.lib, self.lib.ZSTD_initDStream(self.ds))
        inb = _InBuffer(data, len(data), 0)
        parts, total = [], 0
        while True:
            outb = _OutBuffer(ctypes.cast(self.out, _ptr), PART, 0)
            _zcheck(self.lib, self.lib.ZSTD_decompressStream(
                self.ds, ctypes.byref(outb), ctypes.byref(inb)))
            parts.append(ctypes.string_at(self.out, outb.pos))
            total += outb.pos
            if total > LIMIT:
                raise CodecFailed("zstd: a stream piece larger than a frame carries")
            if inb.pos == inb.size and outb.pos < PART:  # input read, output all flushed
                return b"".join(parts)

    def close(self):
        if self.ds:
            self.lib.ZSTD_freeDStream(self.ds)
            self.ds = None


def zstd_codec(lib):
    """``(compress(data, level), decompress(data), compress_long(data, level, wlog),
    (stream(level, wlog, ldm), unstream()))`` through libzstd (``compress_long`` and the
    stream pair None before libzstd 1.4.0)."""
    cbufs = _Buffers(lib.ZSTD_createCCtx)
    dbufs = _Buffers(lib.ZSTD_createDCtx)
    unknown, error = (1 << 64) - 1, (1 << 64) - 2

    def check(code):
        return _zcheck(lib, code)

    def compress(data, level):
        data = data if isinstance(data, bytes) else bytes(data)
        bound = lib.ZSTD_compressBound(len(data))
        item = cbufs.take(bound)
        try:
            n = check(lib.ZSTD_compressCCtx(item[0], item[1], bound, data, len(data), int(level)))
            return ctypes.string_at(item[1], n)
        finally:
            cbufs.give(item)

    def compress_long(data, level, wlog, ldm=True):
        """One frame with a window of 2^wlog, with long-distance matching unless ``ldm`` is
        false (zstd.h's ZSTD_c_compressionLevel 100, ZSTD_c_windowLog 101,
        ZSTD_c_enableLongDistanceMatching 160; ZSTD_reset_session_and_parameters 3).  Off is
        0: "auto" since libzstd 1.5.0, which turns matching on only from the btopt strategy
        with a window of 2^27 (zstd_compress.c's ZSTD_resolveEnableLdm), never for
        these levels and windows; 2 ("disable") is refused before 1.5.0."""
        data = data if isinstance(data, bytes) else bytes(data)
        bound = lib.ZSTD_compressBound(len(data))
        item = cbufs.take(bound)
        try:
            cctx = item[0]
            check(lib.ZSTD_CCtx_reset(cctx, 3))
            for param, value in ((100, int(level)), (101, int(wlog)), (160, 1 if ldm else 0)):
                check(lib.ZSTD_CCtx_setParameter(cctx, param, value))
            n = check(lib.ZSTD_compress2(cctx, item[1], bound, data, len(data)))
            check(lib.ZSTD_CCtx_reset(cctx, 3))  # the context serves compress() next
            return ctypes.string_at(item[1], n)
        finally:
            cbufs.give(item)

    def decompress(data):
        data = data if isinstance(data, bytes) else bytes(data)
        size = lib.ZSTD_getFrameContentSize(data, len(data))
        if size == error:
            raise CodecFailed("zstd: not a zstd frame")
        if size == unknown:  # a frame from the zstd tool reading a pipe
            return _zstd_stream(lib, check, data)
        if size > LIMIT:
            raise CodecFailed("zstd: frame of {} bytes, more than a frame carries".format(size))
        item = dbufs.take(max(size, 1))
        try:
            n = check(lib.ZSTD_decompressDCtx(item[0], item[1], size, data, len(data)))
            return ctypes.string_at(item[1], n)
        finally:
            dbufs.give(item)

    if not lib.vmigrate_long:
        return compress, decompress, None, None
    return compress, decompress, compress_long, (
        lambda level, wlog, ldm=True: LibStream(lib, level, wlog, ldm), lambda: LibUnstream(lib))


def _zstd_stream(lib, check, data):
    """Decode a frame that does not say its size, PART bytes of output at a time."""
    ds = lib.ZSTD_createDStream()
    out = ctypes.create_string_buffer(PART)
    parts, total = [], 0
    try:
        check(lib.ZSTD_initDStream(ds))
        inb = _InBuffer(data, len(data), 0)
        while True:
            outb = _OutBuffer(ctypes.cast(out, _ptr), PART, 0)
            left = check(lib.ZSTD_decompressStream(ds, ctypes.byref(outb), ctypes.byref(inb)))
            parts.append(ctypes.string_at(out, outb.pos))
            total += outb.pos
            if total > LIMIT:
                raise CodecFailed("zstd: frame larger than a frame carries")
            if left == 0 and inb.pos == inb.size:  # decoded and flushed, input all read
                return b"".join(parts)
            if inb.pos == inb.size and outb.pos < PART:
                raise CodecFailed("zstd: truncated frame")
    finally:
        lib.ZSTD_freeDStream(ds)


def lz4_codec(lib):
    """``(compress(data, level), decompress(data), None)`` through liblz4's frame calls
    (the ``lz4`` tool's format; its fast default mode, as the tool's ``-1``)."""

    def check(code):
        if lib.LZ4F_isError(code):
            raise CodecFailed("lz4: " + lib.LZ4F_getErrorName(code).decode("ascii", "replace"))
        return code

    bufs = _Buffers(lambda: None)

    def compress(data, level):
        data = data if isinstance(data, bytes) else bytes(data)
        bound = lib.LZ4F_compressFrameBound(len(data), None)
        item = bufs.take(bound)
        try:
            n = check(lib.LZ4F_compressFrame(item[1], bound, data, len(data), None))
            return ctypes.string_at(item[1], n)
        finally:
            bufs.give(item)

    def decompress(data):
        data = data if isinstance(data, bytes) else bytes(data)
        dctx = _ptr()
        check(lib.LZ4F_createDecompressionContext(ctypes.byref(dctx), 100))  # LZ4F_VERSION
        out = ctypes.create_string_buffer(PART)
        parts, total, pos = [], 0, 0
        keep = ctypes.c_char_p(data)  # the bytes' own buffer, no copy; alive until return
        base = ctypes.cast(keep, _ptr).value
        try:
            while True:
                dst_n, src_n = _size(PART), _size(len(data) - pos)
                left = check(lib.LZ4F_decompress(dctx, out, ctypes.byref(dst_n), base + pos,
                                                 ctypes.byref(src_n), None))
                pos += src_n.value
                parts.append(ctypes.string_at(out, dst_n.value))
                total += dst_n.value
                if total > LIMIT:
                    raise CodecFailed("lz4: frame larger than a frame carries")
                if left == 0 and pos == len(data):
                    return b"".join(parts)
                if pos == len(data) and dst_n.value < PART:
                    raise CodecFailed("lz4: truncated frame")
        finally:
            lib.LZ4F_freeDecompressionContext(dctx)

    return compress, decompress, None, None


def lib_codec(name):
    """``(compress, decompress, compress_long, streams)`` through the host's library for
    ``name`` (``compress_long`` and ``streams`` None where the library has neither), or
    None."""
    lib = load(name)
    if lib is None:
        return None
    return zstd_codec(lib) if name == "zstd" else lz4_codec(lib)
