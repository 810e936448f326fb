"""The peer agent of a direct push, reached through a child process (ssh), as a framed
client; its errors.  Python 3.5, stdlib only."""

import json

from .pipes import widen
from .protocol import pack_frame, read_frame


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

        for pipe in (proc.stdin, proc.stdout):
            widen(pipe.fileno())  # fewer wake-ups of ssh and of this agent per frame
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
        except EOFError as exc:
            raise PeerError("peer closed the connection (exit status {})".format(self.proc.poll()), self) from exc
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
