#!/usr/bin/env python3
"""vmigrate data-plane agent: runs where the disks are.

One file, standard library only, Python 3.5+ syntax, so that it can be uploaded
to an ESXi host and run by the python3 that ESXi ships.  It speaks a framed
binary protocol on stdin/stdout (a pipe locally, an SSH exec channel remotely):

    header  = magic "VG" | type u8 | flags u8 | length u32 | arg u64 | crc32 u32
    payload = ``length`` bytes; crc32 covers the first 16 header bytes + payload

The first exchange is HELLO both ways (JSON, protocol version checked); then the
client sends REQ frames (JSON ``{"op": ...}``) and the agent answers RESP/ERR,
or streams DATA/HOLE/DIGESTS frames closed by END.  A write stream is the
reverse: the client sends DATA/HOLE frames, FLUSH for a durable checkpoint
(answered by ACK with the bytes made durable), and END.

Reads skip holes (SEEK_DATA) and send all-zero blocks as HOLE frames, so a thin
disk costs only its allocated bytes.  Optional fast hashes (xxhash, blake3) are
used when importable; otherwise stdlib hashes serve and the client picks an
algorithm both sides offer.
"""

import base64
import errno
import hashlib
import json
import os
import struct
import sys
import zlib

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
LENGTH = struct.Struct(">Q")

# Frame flags (protocol 1, negotiated in HELLO: an agent that does not list a
# codec in "compression" never receives nor sends frames flagged with it).
FLAG_ZLIB = 0x01
FLAG_ZSTD = 0x02
FEATURES = ["compress", "push", "probe_peer", "bwlimit"]


def _codecs():
    """Compression codecs this Python offers: zlib always, zstd when importable."""
    out = {"zlib": (FLAG_ZLIB, lambda b, lvl: zlib.compress(b, lvl), zlib.decompress)}
    try:
        import zstandard  # optional accelerator, absent on ESXi

        def zc(b, lvl, _c={}):
            c = _c.get(lvl)
            if c is None:
                c = _c[lvl] = zstandard.ZstdCompressor(level=lvl)
            return c.compress(b)

        dctx = zstandard.ZstdDecompressor()
        out["zstd"] = (FLAG_ZSTD, zc, lambda b: dctx.decompress(b, max_output_size=MAX_PAYLOAD))
    except ImportError:
        pass
    return out


CODECS = _codecs()
FLAG_DECODERS = dict((flag, dec) for flag, _c, dec in CODECS.values())


def decode_payload(flags, payload):
    # type: (int, bytes) -> bytes
    """Undo the compression a frame's flags announce (flags 0: as is)."""
    if not flags & (FLAG_ZLIB | FLAG_ZSTD):
        return payload
    dec = FLAG_DECODERS.get(flags & (FLAG_ZLIB | FLAG_ZSTD))
    if dec is None:
        raise ProtocolError("frame compressed with a codec this agent lacks (flags {})".format(flags))
    try:
        return dec(payload)
    except Exception as exc:  # zlib.error, zstd.ZstdError: the stream is corrupt
        raise ProtocolError("cannot decompress a frame: {}".format(exc))


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
            self.level = level if level is not None else (1 if codec == "zlib" else 3)

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


class ProtocolError(Exception):
    pass


def pack_frame(ftype, payload=b"", arg=0, flags=0):
    # type: (int, bytes, int, int) -> bytes
    """Header bytes for a frame (payload is sent separately to avoid a copy)."""
    head = struct.pack(">2sBBIQ", MAGIC, ftype, flags, len(payload), arg)
    crc = zlib.crc32(payload, zlib.crc32(head)) & 0xFFFFFFFF
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
    if zlib.crc32(payload, zlib.crc32(raw[:16])) & 0xFFFFFFFF != crc:
        raise ProtocolError("frame checksum mismatch (type {})".format(FRAME_NAMES.get(ftype)))
    return ftype, flags, arg, payload, raw


# --- hashing ------------------------------------------------------------------


def _hashers():
    algos = []
    try:
        import xxhash  # optional accelerator, ~14 GB/s

        algos.append(("xxh3_128", lambda b: xxhash.xxh3_128(b).digest()))
    except ImportError:
        pass
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


HASHERS = _hashers()
HASH_FUNCS = dict(HASHERS)


# --- the agent ------------------------------------------------------------------


class Agent(object):
    def __init__(self, root, rfile, wfile, chunk=DEFAULT_CHUNK):
        self.root = os.path.realpath(root)
        self.rfile = rfile
        self.wfile = wfile
        self.chunk = chunk

    # framing helpers
    def send(self, ftype, payload=b"", arg=0, flags=0):
        self.wfile.write(pack_frame(ftype, payload, arg, flags))
        if payload:
            self.wfile.write(payload)

    def send_json(self, ftype, obj):
        self.send(ftype, json.dumps(obj).encode("utf-8"))

    def path(self, rel):
        if not isinstance(rel, str) or rel.startswith("/") or "\x00" in rel:
            raise ValueError("bad path {!r}".format(rel))
        full = os.path.realpath(os.path.join(self.root, rel))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise ValueError("path escapes the datastore: {!r}".format(rel))
        return full

    def serve(self):
        ftype, _, _, payload, _ = read_frame(self.rfile)
        if ftype != HELLO:
            raise ProtocolError("expected HELLO")
        hello = json.loads(payload.decode("utf-8"))
        if hello.get("version") != PROTOCOL_VERSION:
            self.send_json(ERR, {"error": "version", "message": "agent speaks protocol {}, client {}".format(
                PROTOCOL_VERSION, hello.get("version"))})
            self.wfile.flush()
            return 3
        self.send_json(HELLO, {
            "version": PROTOCOL_VERSION,
            "agent": "vmigrate-agent",
            "pid": os.getpid(),
            "root": self.root,
            "python": sys.version.split()[0],
            "algorithms": [name for name, _ in HASHERS],
            "compression": sorted(CODECS),
            "features": FEATURES,
        })
        self.wfile.flush()
        while True:
            try:
                ftype, _, _, payload, _ = read_frame(self.rfile)
            except EOFError:
                return 0
            if ftype != REQ:
                raise ProtocolError("expected REQ, got {}".format(FRAME_NAMES.get(ftype, ftype)))
            req = json.loads(payload.decode("utf-8"))
            op = req.get("op")
            if op == "quit":
                self.send_json(RESP, {"ok": True})
                self.wfile.flush()
                return 0
            handler = getattr(self, "op_" + str(op), None)
            try:
                if handler is None:
                    raise ValueError("unknown op {!r}".format(op))
                result = handler(req)
                if result is not None:
                    self.send_json(RESP, result)
            except (OSError, ValueError, KeyError) as exc:
                self.send_json(ERR, error_dict(exc))
            self.wfile.flush()

    # simple operations
    def op_ping(self, req):
        return {"ok": True}

    def op_statfs(self, req):
        st = os.statvfs(self.root)
        return {"free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize}

    def op_stat(self, req):
        try:
            st = os.stat(self.path(req["path"]))
        except FileNotFoundError:
            return {"exists": False}
        import stat as stat_mod

        return {"exists": True, "size": st.st_size, "allocated": st.st_blocks * 512,
                "is_dir": stat_mod.S_ISDIR(st.st_mode)}

    def op_listdir(self, req):
        return {"names": sorted(os.listdir(self.path(req["path"])))}

    def op_makedirs(self, req):
        full = self.path(req["path"])
        if not os.path.isdir(full):
            os.makedirs(full)
        return {"ok": True}

    def op_read_file(self, req):
        with open(self.path(req["path"]), "rb") as f:
            data = f.read()
        return {"data": base64.b64encode(data).decode("ascii")}

    def op_write_file(self, req):
        full = self.path(req["path"])
        if req.get("exclusive") and os.path.exists(full):
            raise OSError(errno.EEXIST, "file exists", req["path"])
        tmp = full + ".tmp-{}".format(os.getpid())
        with open(tmp, "wb") as f:
            f.write(base64.b64decode(req["data"]))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, full)
        return {"ok": True}

    def op_create_disk(self, req):
        full = self.path(req["path"])
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, int(req["size"]))
            os.fsync(fd)
        finally:
            os.close(fd)
        return {"ok": True}

    def op_remove(self, req):
        full = self.path(req["path"])
        if os.path.isdir(full):
            os.rmdir(full)
        elif os.path.exists(full):
            os.remove(full)
        return {"ok": True}

    def op_allocated(self, req):
        fd = os.open(self.path(req["path"]), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            return {"extents": data_regions(fd, 0, size)}
        finally:
            os.close(fd)

    # streams
    def op_read(self, req):
        """Stream extents as DATA/HOLE frames, then END with a summary."""
        try:
            comp = Compressor(req.get("compress"), req.get("level"))
            throttle = Throttle(req.get("bwlimit"))
        except ValueError as exc:
            self.send_json(ERR, error_dict(exc))
            return None
        send = self.send

        def emit(ftype, payload, arg):
            flags = 0
            if ftype == DATA:
                payload, flags = comp.pack(payload)
            send(ftype, payload, arg, flags)
            throttle.add(len(payload) + HEADER_SIZE)

        stats = {"sent": 0, "holes": 0, "read": 0}
        try:
            self.read_frames(req["path"], req["extents"], int(req.get("chunk", self.chunk)), emit, stats)
        except (OSError, ValueError) as exc:
            self.send_json(ERR, error_dict(exc))
            return None
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
                        want = min(chunk, s + n - pos)
                        buf = os.pread(fd, want, pos)
                        if len(buf) != want:
                            raise OSError(errno.EIO, "short read at {}".format(pos))
                        stats["read"] += want
                        split_zero_grains(buf, pos, zero, emit, stats)
                        pos += want
        finally:
            os.close(fd)

    # --- direct mode: this agent streams to a peer agent it starts over ssh ---------
    def _start_peer(self, argv):
        import subprocess
        import tempfile

        err = tempfile.TemporaryFile()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                bufsize=0)
        peer = Peer(proc, err)
        peer.send(HELLO, json.dumps({"version": PROTOCOL_VERSION}).encode("utf-8"))
        peer.flush()
        ftype, payload, _arg = peer.recv()
        if ftype != HELLO:
            raise PeerError("peer agent refused the handshake: {}".format(payload[:500]), peer)
        peer.hello = json.loads(payload.decode("utf-8"))
        return peer

    def op_probe_peer(self, req):
        """Can this host start an agent on the peer?  (preflight for direct mode)"""
        try:
            peer = self._start_peer(req["argv"])
        except (OSError, EOFError, ProtocolError, PeerError, ValueError) as exc:
            return {"ok": False, "message": peer_message(exc)}
        hello = peer.hello
        peer.close()
        return {"ok": True, "peer": {"root": hello.get("root"), "python": hello.get("python"),
                                     "compression": hello.get("compression", [])}}

    def op_push(self, req):
        """Stream extents of a local file straight into a file on a peer (direct mode).

        The peer agent is started with ``req["argv"]`` (an ssh command).  Every
        ``checkpoint`` bytes the peer makes its writes durable; its ACK is passed
        on to the client as an ACK frame carrying the offset reached, so that a
        broken push resumes from there.  END carries the summary; ERR carries the
        error with ``acked_offset`` (and ``peer: true`` when the peer failed).
        """
        stats = {"sent": 0, "holes": 0, "read": 0, "wire": 0}
        state = {"since": 0, "reached": 0, "acked_offset": None}
        peer = None
        try:
            checkpoint = int(req.get("checkpoint", 64 << 20))
            throttle = Throttle(req.get("bwlimit"))
            peer = self._start_peer(req["argv"])
            codec = req.get("compress")
            if codec and codec not in peer.hello.get("compression", []):
                codec = None
            comp = Compressor(codec, req.get("level"))
            peer.send(REQ, json.dumps({"op": "write", "path": req["dest_path"]}).encode("utf-8"))
            peer.flush()
            ftype, payload, _arg = peer.recv()
            if ftype != RESP:
                raise PeerError(payload, peer, remote=True)
            psend = peer.send
            me = self

            pending = []  # offsets of FLUSHes sent, not yet acknowledged (pipelined)

            def take_ack():
                ftype, payload, arg = peer.recv()
                if ftype == ERR:
                    raise PeerError(payload, peer, remote=True)
                if ftype not in (ACK, END):
                    raise PeerError("unexpected frame {} from the peer".format(ftype), peer)
                off = pending.pop(0)
                state["acked_offset"] = off
                me.send(ACK, json.dumps({"reached": off}).encode("utf-8"), off)
                me.wfile.flush()

            def flush_peer(final):
                # FLUSH goes out and streaming goes on; its ACK is collected when it
                # arrives (at most two outstanding), END waits for everything
                peer.send(END if final else FLUSH)
                peer.flush()
                pending.append(state["reached"])
                state["since"] = 0
                while pending and (final or len(pending) > 1 or peer.ack_ready()):
                    take_ack()

            def emit(ftype, payload, arg):
                flags = 0
                if ftype == DATA:
                    payload, flags = comp.pack(payload)
                psend(ftype, payload, arg, flags)
                n = len(payload) + HEADER_SIZE
                stats["wire"] += n
                throttle.add(n)
                state["since"] += n

            def emit_raw(ftype, payload, arg):
                end = arg + (len(payload) if ftype == DATA else LENGTH.unpack(payload)[0])
                emit(ftype, payload, arg)
                state["reached"] = end
                if state["since"] >= checkpoint:
                    flush_peer(False)
                elif pending and peer.ack_ready():
                    take_ack()

            self.read_frames(req["path"], req["extents"], int(req.get("chunk", self.chunk)),
                             emit_raw, stats)
            flush_peer(True)
            peer.send(REQ, b'{"op": "quit"}')
            peer.flush()
            peer.close()
            peer = None
        except PeerError as exc:
            info = exc.info()
            info.update(acked_offset=state["acked_offset"], peer=True)
            self.send_json(ERR, info)
            return None
        except (OSError, ValueError, EOFError, ProtocolError) as exc:
            extra = {"acked_offset": state["acked_offset"]}
            if peer is not None and not isinstance(exc, ValueError):
                extra["peer"] = True
                extra["peer_stderr"] = peer.stderr()
            self.send_json(ERR, error_dict(exc, **extra))
            return None
        finally:
            if peer is not None:
                peer.kill()
        stats["acked_offset"] = state["reached"]
        self.send_json(END, stats)
        return None

    def op_write(self, req):
        """Receive DATA/HOLE frames into a file until END; FLUSH makes them durable."""
        full = self.path(req["path"])
        flags = os.O_WRONLY | (os.O_CREAT if req.get("create") else 0)
        fd = os.open(full, flags, 0o600)
        written = holes = 0
        acked = 0
        failure = None
        try:
            self.send_json(RESP, {"ok": True})
            self.wfile.flush()
            while True:
                ftype, fflags, arg, payload, _ = read_frame(self.rfile)
                if ftype == DATA:
                    if failure is None:
                        try:
                            payload = decode_payload(fflags, payload)
                            pwrite_all(fd, payload, arg)
                            written += len(payload)
                        except OSError as exc:
                            failure = exc
                elif ftype == HOLE:
                    if failure is None:
                        try:
                            n = LENGTH.unpack(payload)[0]
                            write_zeros(fd, arg, n)
                            holes += n
                        except OSError as exc:
                            failure = exc
                elif ftype in (FLUSH, END):
                    if failure is None:
                        try:
                            os.fsync(fd)
                            acked = written + holes
                        except OSError as exc:
                            failure = exc
                    if failure is not None:
                        self.send_json(ERR, error_dict(failure, acked=acked))
                        if ftype == END:
                            return None
                    elif ftype == FLUSH:
                        self.send(ACK, b"", acked)
                    else:
                        self.send_json(END, {"written": written, "holes": holes, "acked": acked})
                        return None
                    self.wfile.flush()
                else:
                    raise ProtocolError("unexpected {} in write stream".format(FRAME_NAMES.get(ftype, ftype)))
        finally:
            os.close(fd)

    def op_hash(self, req):
        """Digest every block of the extents (or the file), streamed in DIGESTS frames."""
        algo = req["algorithm"]
        func = HASH_FUNCS.get(algo)
        if func is None:
            raise ValueError("hash algorithm {!r} not available here".format(algo))
        block = int(req["block"])
        fd = os.open(self.path(req["path"]), os.O_RDONLY)
        zero_digests = {}
        entries = []
        count = 0
        try:
            size = os.fstat(fd).st_size
            extents = req.get("extents")
            if extents is None:
                extents = [[0, size]]
            per_frame = max(1, int(req.get("per_frame", 2048)))
            read_size = max(block, (4 << 20) // block * block)
            for start, length in extents:
                end = min(start + length, size)
                regions = data_regions(fd, start, end)
                ri = 0
                pos = start
                while pos < end:
                    # blocks follow the global block grid, whatever the allocation,
                    # so that both sides cut the same blocks
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
                        self.send(DIGESTS, b"".join(entries))
                        entries = []
            if entries:
                count += len(entries)
                self.send(DIGESTS, b"".join(entries))
        except (OSError, ValueError) as exc:
            self.send_json(ERR, error_dict(exc))
            return None
        finally:
            os.close(fd)
        self.send_json(END, {"blocks": count})
        return None


def split_zero_grains(buf, pos, zero, emit, stats):
    """Emit ``buf`` as DATA runs, with all-zero 64 KiB grains as HOLE frames."""
    n = len(buf)
    i = run_start = 0
    run_zero = None
    runs = []
    while i < n:
        g = min(ZERO_GRAIN, n - i)
        is_zero = buf[i:i + g] == (zero if g == ZERO_GRAIN else bytes(g))
        if run_zero is None:
            run_zero = is_zero
        elif is_zero != run_zero:
            runs.append((run_start, i, run_zero))
            run_start = i
            run_zero = is_zero
        i += g
    if run_zero is not None:
        runs.append((run_start, n, run_zero))
    for a, b, is_zero in runs:
        if is_zero:
            emit(HOLE, LENGTH.pack(b - a), pos + a)
            stats["holes"] += b - a
        else:
            emit(DATA, buf[a:b] if (a or b != n) else buf, pos + a)
            stats["sent"] += b - a


class PeerError(Exception):
    """The peer agent (direct mode) failed or could not be started."""

    def __init__(self, payload, peer, remote=False):
        Exception.__init__(self, payload)
        self.payload = payload
        self.peer = peer
        self.remote = remote

    def info(self):
        if self.remote:
            try:
                d = json.loads(self.payload.decode("utf-8"))
                if isinstance(d, dict) and "error" in d:
                    d["message"] = "peer: " + str(d.get("message"))
                    return d
            except ValueError:
                pass
        return {"error": "PeerError", "message": peer_message(self),
                "peer_stderr": self.peer.stderr() if self.peer else ""}


def peer_message(exc):
    msg = str(exc.payload) if isinstance(exc, PeerError) else str(exc)
    peer = getattr(exc, "peer", None)
    if peer is not None:
        err = peer.stderr()
        if err:
            msg += ": " + err
    return msg


class Peer(object):
    """A peer agent reached through a child process (ssh), as a framed client."""

    def __init__(self, proc, err):
        self.proc = proc
        self.err = err
        import io

        self.w = io.BufferedWriter(proc.stdin, 1 << 20)
        self.r = proc.stdout  # unbuffered: select() then tells the truth
        self.hello = {}

    def ack_ready(self):
        """Has the peer answered (an ACK or an ERR is waiting)?"""
        import select

        return bool(select.select([self.r], [], [], 0)[0])

    def send(self, ftype, payload=b"", arg=0, flags=0):
        self.w.write(pack_frame(ftype, payload, arg, flags))
        if payload:
            self.w.write(payload)

    def flush(self):
        self.w.flush()

    def recv(self):
        try:
            ftype, _flags, arg, payload, _raw = read_frame(self.r)
        except EOFError:
            raise PeerError("peer closed the connection (exit status {})".format(self.proc.poll()), self)
        return ftype, payload, arg

    def stderr(self):
        try:
            self.err.seek(0)
            return self.err.read().decode("utf-8", "replace").strip()[-1500:]
        except (OSError, ValueError):
            return ""

    def close(self):
        for s in (self.w, self.r):
            try:
                s.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa - TimeoutExpired
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait()
        except OSError:
            pass
        try:
            self.err.close()
        except OSError:
            pass


def data_regions(fd, start, end):
    """Allocated [start, length] regions of a file between start and end."""
    out = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return [[start, end - start]]  # no hole support: all data
            raise
        if data >= end:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        out.append([data, hole - data])
        pos = hole
    return out


def data_and_holes(fd, start, end):
    """Yield ("data"|"hole", start, length) covering [start, end) exactly."""
    pos = start
    for s, n in data_regions(fd, start, end):
        if s > pos:
            yield ("hole", pos, s - pos)
        yield ("data", s, n)
        pos = s + n
    if pos < end:
        yield ("hole", pos, end - pos)


def pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


_PUNCH = None


def _punch_hole_func():
    """fallocate(PUNCH_HOLE|KEEP_SIZE) through ctypes where libc has it."""
    global _PUNCH
    if _PUNCH is None:
        _PUNCH = False
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            func = libc.fallocate
            func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            _PUNCH = func
        except (OSError, AttributeError):
            _PUNCH = False
    return _PUNCH


def write_zeros(fd, offset, length):
    """Make [offset, offset+length) read as zeros: punch a hole, or write zeros."""
    size = os.fstat(fd).st_size
    if offset + length > size:
        os.ftruncate(fd, offset + length)
    punch = _punch_hole_func()
    if punch:
        if punch(fd, 0x01 | 0x02, offset, length) == 0:  # KEEP_SIZE | PUNCH_HOLE
            return
    zero = bytes(min(length, 1 << 20))
    pos, end = offset, offset + length
    while pos < end:
        n = min(len(zero), end - pos)
        pwrite_all(fd, zero[:n], pos)
        pos += n


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


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="vmigrate data-plane agent (speaks on stdin/stdout)")
    parser.add_argument("--root", required=True, help="datastore folder served by this agent")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        sys.stderr.write("vmigrate-agent: datastore folder {} does not exist\n".format(args.root))
        return 2
    rfile = os.fdopen(sys.stdin.fileno(), "rb", buffering=1 << 20)
    wfile = os.fdopen(sys.stdout.fileno(), "wb", buffering=1 << 20)
    agent = Agent(args.root, rfile, wfile, chunk=args.chunk)
    try:
        return agent.serve()
    except (EOFError, BrokenPipeError):
        return 0
    except ProtocolError as exc:
        sys.stderr.write("vmigrate-agent: protocol error: {}\n".format(exc))
        return 4


if __name__ == "__main__":
    sys.exit(main())
