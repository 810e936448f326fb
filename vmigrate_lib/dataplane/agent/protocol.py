"""The agent's wire protocol: frames, constants, compression flags.

    header  = magic "VG" | type u8 | flags u8 | length u32 | arg u64 | crc32 u32
    payload = ``length`` bytes; crc32 covers the first 16 header bytes + payload, except
              for DATA (flag FLAG_HEAD_CRC): the header only

The first exchange is HELLO both ways (JSON, protocol version checked); then the
client sends REQ frames (JSON ``{"op": ...}``) and the agent answers RESP/ERR,
or streams DATA/HOLE/DIGESTS frames closed by END.  A write stream is the
reverse: the client sends DATA/HOLE frames, FLUSH for a durable checkpoint
(answered by ACK with the bytes made durable), and END.

Imported by the agent (Python 3.5+, stdlib only) and by the client alike.
"""

import errno
import struct
import zlib

from .zstdframe import content_size

try:  # only for type comments; absent on very old Pythons
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

PROTOCOL_VERSION = 1
MAGIC = b"VG"
HEADER = struct.Struct(">2sBBIQI")
HEADER_SIZE = HEADER.size  # 20
MAX_PAYLOAD = 64 * 1024 * 1024

HELLO, REQ, RESP, ERR, DATA, HOLE, END, DIGESTS, ACK, FLUSH = range(1, 11)
FRAME_NAMES = {
    HELLO: "HELLO", REQ: "REQ", RESP: "RESP", ERR: "ERR", DATA: "DATA", HOLE: "HOLE",
    END: "END", DIGESTS: "DIGESTS", ACK: "ACK", FLUSH: "FLUSH",
}

ZERO_GRAIN = 64 * 1024
DEFAULT_CHUNK = 1024 * 1024
DIGEST_ENTRY = struct.Struct(">QI")  # offset, length; digest bytes follow
DEST_DIGESTS = 1  #: a DIGESTS frame's arg in a push: the destination's read-back digests
LENGTH = struct.Struct(">Q")

# Frame flags (protocol 1, negotiated in HELLO: an agent that does not list a
# codec in "compression" never receives nor sends frames flagged with it).
FLAG_ZLIB = 0x01
FLAG_ZSTD = 0x02
FLAG_LZ4 = 0x04  # an lz4 frame (the lz4 tool's format)
CODEC_FLAGS = FLAG_ZLIB | FLAG_ZSTD | FLAG_LZ4
#: a piece of a push's one zstd stream (:data:`ZSTREAM`): it decodes only after every
#: piece before it, through the write stream's one decoder, never alone (the feature
#: ``zstd_stream`` in a peer's HELLO says it has that decoder); with FLAG_ZSTREAM_FIRST a
#: new stream starts with this piece
FLAG_ZSTREAM = 0x08
FLAG_ZSTREAM_FIRST = 0x10
#: a DATA frame's crc32 covers its header only.  zlib's crc32 runs slower than sha1 on
#: the hosts measured (bench/README.md), and a disk's bytes are checked anyway: by SSH's
#: MAC on the wire, by a compressed frame's own checksum, and end to end by certify (the
#: source's digests as streamed against the destination's read back from the file)
FLAG_HEAD_CRC = 0x80
FEATURES = ["compress", "push", "probe_peer", "bwlimit", "delta_formats"]
#: HELLO's ``features`` add this where the agent decodes FLAG_ZSTREAM pieces
ZSTREAM_FEATURE = "zstd_stream"


def _zstd_module():
    """zstd through the zstandard module (absent on ESXi), or None: compress, decompress and
    a long-window compress (:data:`LONG_WINDOW`).  One compressor and
    one decompressor per thread: the packer's threads run at once, and python-zstandard's
    objects are not thread safe (a shared one crashed the process)."""
    try:
        import zstandard
    except ImportError:
        return None
    import threading

    mine = threading.local()

    def zc(b, lvl):
        cs = getattr(mine, "c", None)
        if cs is None:
            cs = mine.c = {}
        c = cs.get(lvl)
        if c is None:
            c = cs[lvl] = zstandard.ZstdCompressor(level=lvl)
        return c.compress(b)

    def zd(b):
        d = getattr(mine, "d", None)
        if d is None:
            d = mine.d = zstandard.ZstdDecompressor()
        # a frame from the zstd tool has no content size: bounded by MAX_PAYLOAD
        return d.decompress(b, max_output_size=MAX_PAYLOAD)

    class Stream(object):  # see codeclib.LibStream
        def __init__(self, lvl, wlog, ldm=True):
            params = zstandard.ZstdCompressionParameters.from_level(
                lvl, window_log=wlog, enable_ldm=int(bool(ldm)))
            self.c = zstandard.ZstdCompressor(compression_params=params).compressobj()

        def compress(self, b):
            return self.c.compress(b) + self.c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

        def close(self):
            self.c = None

    class Unstream(object):  # see codeclib.LibUnstream
        def __init__(self):
            self.d = None

        def decode(self, b, first):
            if first or self.d is None:
                self.d = zstandard.ZstdDecompressor(max_window_size=1 << 27).decompressobj()
            out = self.d.decompress(b)
            if len(out) > MAX_PAYLOAD:
                raise ValueError("zstd: a stream piece larger than a frame carries")
            return out

        def close(self):
            self.d = None

    def zlong(b, lvl, wlog, ldm=True):
        cs = getattr(mine, "long", None)
        if cs is None:
            cs = mine.long = {}
        c = cs.get((lvl, wlog, ldm))
        if c is None:
            params = zstandard.ZstdCompressionParameters.from_level(
                lvl, window_log=wlog, enable_ldm=int(bool(ldm)))
            c = cs[(lvl, wlog, ldm)] = zstandard.ZstdCompressor(compression_params=params)
        return c.compress(b)

    return zc, zd, zlong, (Stream, Unstream)


def _codecs(path=None):
    """Compression codecs here, and how each runs: zlib always; zstd and lz4 through the
    zstandard module, else the host's library (ctypes: no process per frame, several
    threads at once), else the tool on PATH (a process per frame)."""
    from .codecbin import bin_codec

    try:
        from .codeclib import lib_codec
    except ImportError:  # a Python built without ctypes: no library codecs

        def lib_codec(name):
            return None

    out = {"zlib": (FLAG_ZLIB, lambda b, lvl: zlib.compress(b, lvl), zlib.decompress)}
    impl = {"zlib": "module"}
    longs, streams = {}, {}
    finders = (("module", lambda n: _zstd_module() if n == "zstd" else None),
               ("lib", lib_codec),
               ("bin", lambda n: bin_codec(n, path)))
    for name, flag in (("zstd", FLAG_ZSTD), ("lz4", FLAG_LZ4)):
        for how, find in finders:
            funcs = find(name)
            if funcs is not None:
                out[name] = (flag,) + tuple(funcs[:2])
                impl[name] = how
                if len(funcs) > 2 and funcs[2] is not None:
                    longs[name] = funcs[2]
                if len(funcs) > 3 and funcs[3] is not None:
                    streams[name] = funcs[3]
                break
    return out, impl, longs, streams


CODECS, CODEC_IMPL, LONG_WINDOW, _STREAMS = _codecs()
#: ``(stream(level, wlog, ldm), unstream())`` where zstd runs in this process (the module
#: or libzstd >= 1.4.0), else None: ``stream(...).compress(piece)`` flushes each piece of
#: one frame whose window spans the pieces before it, ``unstream().decode(piece, first)``
#: decodes them in order.  A push's joined chunks go through one stream on a link that
#: holds the stream back: across the 384 MiB share image's 234 MiB of data, at level 1,
#: 16 MiB frames with LDM 83.7 MiB, one stream with a 2^26 window 76.5 MiB (2^24 79.9,
#: 2^27 75.9: bench/README.md); a codec binary cannot (a process per frame)
ZSTREAM = _STREAMS.get("zstd")
#: ``LONG_WINDOW[codec](data, level, window_log, ldm=True)``: one frame whose window spans
#: the whole payload, with long-distance matching unless ``ldm`` is false (zstd's
#: ``--long``): several chunks joined in one frame find the repeats a chunk's own window
#: cannot (``packing`` turns matching off while the codec is behind: a frame without it
#: still costs less than a frame per chunk).  Any zstd decoder reads such a frame (window <= 2^27).
FLAG_DECODERS = dict((flag, dec) for flag, _c, dec in CODECS.values())
#: fastest first: zstd -1 compresses about as fast as lz4 and much smaller; zlib last
PREFERENCE = ["zstd", "lz4", "zlib"]


def codec_label(codec):
    # type: (str) -> str
    """The codec as journals name it: ``zstd-lib`` or ``zstd-bin`` where the host's
    library or its tool ran it (no python module)."""
    how = CODEC_IMPL.get(codec)
    return codec + "-" + how if how in ("lib", "bin") else codec


def best_codec(offered):
    # type: (typing.Iterable[str]) -> typing.Optional[str]
    """The first codec of :data:`PREFERENCE` that this side and ``offered`` both have."""
    for name in PREFERENCE:
        if name in offered and name in CODECS:
            return name
    return None


def packed_length(flags, payload):
    # type: (int, bytes) -> typing.Optional[int]
    """The length a compressed DATA payload decodes to, when its frame announces it (a zstd
    frame with its content size, :mod:`.zstdframe`); else None (decode it to know)."""
    if flags & CODEC_FLAGS == FLAG_ZSTD:
        return content_size(payload)
    return None


def decode_payload(flags, payload):
    # type: (int, bytes) -> bytes
    """Undo the compression a frame's flags announce (flags 0: as is)."""
    if flags & FLAG_ZSTREAM:  # never written as it is: its bytes mean nothing alone
        raise ProtocolError("a zstd stream piece outside a push's write stream")
    if not flags & CODEC_FLAGS:
        return payload
    dec = FLAG_DECODERS.get(flags & CODEC_FLAGS)
    if dec is None:
        raise ProtocolError("frame compressed with a codec this agent lacks (flags {})".format(flags))
    try:
        return dec(payload)
    except Exception as exc:  # zlib.error, zstd.ZstdError, CodecFailed: the stream is corrupt
        raise ProtocolError("cannot decompress a frame: {}".format(exc)) from exc


class Compressor(object):
    """Compress DATA payloads, but stop trying for a while when data does not shrink."""

    def __init__(self, codec, level=None):
        # type: (typing.Optional[str], typing.Optional[int]) -> None
        self.flag = 0
        self.func = None
        self.skip = 0
        if codec:
            if codec not in CODECS:
                raise ValueError("compression {!r} not available here".format(codec))
            self.flag, self.func, _dec = CODECS[codec]
            self.level = level if level is not None else 1

    def pack(self, payload):
        # type: (bytes) -> typing.Tuple[bytes, int]
        if self.func is None or len(payload) < 4096:
            return payload, 0
        if self.skip:
            self.skip -= 1
            return payload, 0
        out = self.func(payload, self.level)
        if len(out) > len(payload) * 0.9:
            self.skip = 16  # incompressible: send the next 16 as they are
            return payload, 0
        return out, self.flag


class ProtocolError(Exception):
    pass


def pack_frame(ftype, payload=b"", arg=0, flags=0):
    # type: (int, bytes, int, int) -> bytes
    """Header bytes for a frame (payload is sent separately to avoid a copy)."""
    if ftype == DATA:
        flags |= FLAG_HEAD_CRC
    head = struct.pack(">2sBBIQ", MAGIC, ftype, flags, len(payload), arg)
    crc = (zlib.crc32(head) if flags & FLAG_HEAD_CRC else zlib.crc32(payload, zlib.crc32(head)))
    crc &= 0xFFFFFFFF
    return head + struct.pack(">I", crc)


def read_exact(stream, n):
    # type: (typing.Any, int) -> bytes
    buf = stream.read(n)
    if buf is None or len(buf) != n:
        if not buf:
            raise EOFError("stream closed")
        parts = [buf]
        got = len(buf)
        while got < n:
            more = stream.read(n - got)
            if not more:
                raise EOFError("stream closed mid-frame")
            parts.append(more)
            got += len(more)
        buf = b"".join(parts)
    return buf


def read_frame(stream):
    # type: (typing.Any) -> typing.Tuple[int, int, int, bytes, bytes]
    """Read one frame; returns (type, flags, arg, payload, raw_header)."""
    raw = read_exact(stream, HEADER_SIZE)
    magic, ftype, flags, length, arg, crc = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError("bad frame magic {!r}".format(magic))
    if length > MAX_PAYLOAD:
        raise ProtocolError("frame too large: {}".format(length))
    payload = read_exact(stream, length) if length else b""
    if flags & FLAG_HEAD_CRC:
        if zlib.crc32(raw[:16]) & 0xFFFFFFFF != crc:
            raise ProtocolError("frame checksum mismatch (type {})".format(FRAME_NAMES.get(ftype)))
        return ftype, flags & ~FLAG_HEAD_CRC, arg, payload, raw
    if zlib.crc32(payload, zlib.crc32(raw[:16])) & 0xFFFFFFFF != crc:
        raise ProtocolError("frame checksum mismatch (type {})".format(FRAME_NAMES.get(ftype)))
    return ftype, flags, arg, payload, raw


def error_dict(exc, **extra):
    d = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, OSError):
        d["errno"] = exc.errno
        d["errname"] = errno.errorcode.get(exc.errno or 0, "")
        d["message"] = exc.strerror or str(exc)
        if exc.filename:
            d["filename"] = str(exc.filename)
    d.update(extra)
    return d

