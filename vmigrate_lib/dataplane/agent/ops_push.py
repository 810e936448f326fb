"""Direct mode: this agent starts a peer agent over ssh and streams extents into it."""

import json

from .ops_stream import Throttle, digesting, frame_size
from .packing import Packer
from .peer import Peer, PeerError, peer_message
from .peerstart import Ahead, PeerStarter, pick_codec
from .protocol import (
    ACK,
    DEST_DIGESTS,
    DIGESTS,
    END,
    ERR,
    FLUSH,
    HEADER_SIZE,
    HELLO,
    PROTOCOL_VERSION,
    REQ,
    RESP,
    ZSTREAM_FEATURE,
    ProtocolError,
    error_dict,
)


class PushLink(object):
    """The stream into the peer: frames out in order, FLUSH every ``checkpoint`` bytes and
    its ACK passed on to the client (at most two outstanding), END waiting for all."""

    def __init__(self, agent, checkpoint, throttle):
        self.agent, self.checkpoint, self.throttle = agent, checkpoint, throttle
        self.peer = None
        self.since = 0
        self.reached = 0
        self.acked_offset = None
        self.pending = []  # offsets of FLUSHes sent, not yet acknowledged (pipelined)

    def take_ack(self):
        peer, me = self.peer, self.agent
        ftype, payload, arg = peer.recv()
        while ftype == DIGESTS:  # the peer's read-back digests, before its END
            me.send(DIGESTS, payload, DEST_DIGESTS)
            ftype, payload, arg = peer.recv()
        if ftype == ERR:
            raise PeerError(payload, peer, remote=True)
        if ftype not in (ACK, END):
            raise PeerError("unexpected frame {} from the peer".format(ftype), peer)
        off = self.pending.pop(0)
        self.acked_offset = off
        me.send(ACK, json.dumps({"reached": off}).encode("utf-8"), off)
        me.wfile.flush()

    def flush_peer(self, final):
        """FLUSH goes out and streaming goes on; its ACK is collected when it arrives."""
        self.peer.send(END if final else FLUSH)
        self.peer.flush()
        self.pending.append(self.reached)
        self.since = 0
        while self.pending and (final or len(self.pending) > 1 or self.peer.ack_ready()):
            self.take_ack()

    def out(self, ftype, payload, arg, flags, size):
        """One frame; its end (``size``: the data it covers, whatever its payload's length
        compressed or joined) is the offset reached."""
        self.peer.send(ftype, payload, arg, flags)
        n = len(payload) + HEADER_SIZE
        self.throttle.add(n)
        self.since += n
        self.reached = arg + size
        if self.since >= self.checkpoint:
            self.flush_peer(False)
        elif self.pending and self.peer.ack_ready():
            self.take_ack()

    def taker(self, codec):
        """Ahead's callback once the peer is up: checks its codecs, returns :meth:`out`."""
        def took(p):
            self.peer = p
            theirs = p.hello.get("compression", [])
            if codec and codec not in theirs:
                raise ValueError("compression {} chosen but the peer agent offers only {}".format(
                    codec, ", ".join(theirs) or "none"))
            return self.out
        return took


class PushOps(object):
    """Mixed into the Agent: direct-mode push and its preflight probe."""

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

    def _open_peer(self, argv, wreq):
        """The peer agent (the one kept by the preflight's probe, else a new one) with its
        write stream open (``wreq``)."""
        kept = (getattr(self, "kept_peers", None) or {}).pop(tuple(argv), None)
        if kept is not None:
            try:
                return self._open_write(kept, wreq)
            except (OSError, EOFError, ProtocolError, PeerError) as exc:
                kept.kill()  # it went away since the probe: start another
                if isinstance(exc, PeerError) and exc.remote:
                    raise  # it answered: the write itself is refused
        return self._open_write(self._start_peer(argv), wreq)

    def _open_write(self, peer, wreq):
        peer.send(REQ, json.dumps(wreq).encode("utf-8"))
        peer.flush()
        ftype, payload, _arg = peer.recv()
        if ftype != RESP:
            raise PeerError(payload, peer, remote=True)
        return peer

    def op_probe_peer(self, req):
        """Can this host start an agent on the peer?  (preflight for direct mode)

        With ``keep`` the peer stays up for the push that follows (one ssh login and
        python3 start fewer per command: ~0.8 s between the bench's namespaces)."""
        try:
            peer = self._start_peer(req["argv"])
        except (OSError, EOFError, ProtocolError, PeerError, ValueError) as exc:
            return {"ok": False, "message": peer_message(exc)}
        hello = peer.hello
        if req.get("keep"):
            kept = self.__dict__.setdefault("kept_peers", {})
            old = kept.pop(tuple(req["argv"]), None)
            if old is not None:
                old.close()
            kept[tuple(req["argv"])] = peer
        else:
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
        link = PushLink(self, int(req.get("checkpoint", 64 << 20)), Throttle(req.get("bwlimit")))
        starter = None
        done = None  # the peer once everything is durable: closed after our END
        try:
            wreq = {"op": "write", "path": req["dest_path"]}
            if req.get("dest_digest"):  # the peer reads back what it wrote, for certify
                wreq["digest"] = req["dest_digest"]
            # the peer starts on a thread while the first frames are read and packed
            starter = PeerStarter(self._open_peer, req["argv"], wreq)
            offered = req.get("peer_compression")
            streams = bool(req.get("peer_zstream"))  # unsaid with the codecs: no stream
            if offered is None:  # the client did not say: the peer's HELLO will
                hello = starter.wait().hello
                offered = hello.get("compression", [])
                streams = ZSTREAM_FEATURE in hello.get("features", [])
            codec = pick_codec(req.get("compress"), offered)
            ahead = Ahead(starter, link.taker(codec))
            packer = Packer(codec, req.get("level"), ahead.send, stream=streams)
            # the digests of what is pushed go to the client (certify reads the source once)
            emit, dig = digesting(req, packer.emit, self.send)
            try:
                self.read_frames(req["path"], req["extents"], frame_size(req, self.chunk, packer),
                                 emit, stats)
                packer.finish()
                if dig is not None:
                    dig.finish()
                    stats["digests"] = dig.count
            finally:
                packer.abort()  # after finish(): only stops the threads
            stats.update(packer.stats, codec=packer.codec)
            ahead.release()
            link.flush_peer(True)
            link.peer.send(REQ, b'{"op": "quit"}')
            link.peer.flush()
            done, link.peer, starter = link.peer, None, None
        except PeerError as exc:
            info = exc.info()
            info.update(acked_offset=link.acked_offset, peer=True)
            self.send_json(ERR, info)
            return None
        except (OSError, ValueError, EOFError, ProtocolError) as exc:
            extra = {"acked_offset": link.acked_offset}
            if link.peer is not None and not isinstance(exc, ValueError):
                extra["peer"] = True
                extra["peer_stderr"] = link.peer.stderr()
            self.send_json(ERR, error_dict(exc, **extra))
            return None
        finally:
            if link.peer is not None:
                link.peer.kill()
            elif starter is not None:  # failed before the peer was taken
                starter.abandon()
        stats["acked_offset"] = link.reached
        self.send_json(END, stats)
        # the client has its END (every byte is durable on the peer) before the peer's
        # ssh and python exit, which only this agent waits for
        try:
            self.wfile.flush()
        finally:
            done.close()
        return None
