"""The agent process: handshake, request dispatch, command line."""

import json
import os
import sys

from .hashing import HASHERS
from .ops_delta import DeltaOps
from .ops_files import FileOps
from .ops_push import PushOps
from .ops_stream import StreamOps
from .pipes import widen
from .probe import probe_storage
from .protocol import (
    CODEC_IMPL,
    CODECS,
    DEFAULT_CHUNK,
    ERR,
    FEATURES,
    FRAME_NAMES,
    HELLO,
    PROTOCOL_VERSION,
    REQ,
    RESP,
    ZSTREAM,
    ZSTREAM_FEATURE,
    ProtocolError,
    error_dict,
    pack_frame,
    read_frame,
)


class Agent(FileOps, StreamOps, PushOps, DeltaOps):
    """Serves one datastore folder on a pair of byte streams (stdin/stdout)."""

    def __init__(self, root, rfile, wfile, chunk=DEFAULT_CHUNK):
        self.root = os.path.realpath(root)
        self.rfile = rfile
        self.wfile = wfile
        self.chunk = chunk
        #: what the folder's file system does (SEEK_DATA, hole punching, vmkfstools),
        #: probed at HELLO
        self.storage = {}

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
        self.storage = probe_storage(self.root)
        self.send_json(HELLO, {
            "version": PROTOCOL_VERSION,
            "agent": "vmigrate-agent",
            "pid": os.getpid(),
            "root": self.root,
            "python": sys.version.split()[0],
            "algorithms": [name for name, _ in HASHERS],
            "compression": sorted(CODECS),
            # "module"; "lib": the host's libzstd/liblz4 through ctypes; "bin": its tool
            "codec_impl": CODEC_IMPL,
            "features": FEATURES + ([ZSTREAM_FEATURE] if ZSTREAM else []),
            "storage": self.storage,
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


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="vmigrate data-plane agent (speaks on stdin/stdout)")
    parser.add_argument("--root", required=True, help="datastore folder served by this agent")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        sys.stderr.write("vmigrate-agent: datastore folder {} does not exist\n".format(args.root))
        return 2
    for fd in (sys.stdin.fileno(), sys.stdout.fileno()):
        widen(fd)  # the pipes from and to ssh: fewer wake-ups per frame
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
