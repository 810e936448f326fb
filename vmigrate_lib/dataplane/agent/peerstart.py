"""Direct mode: the peer agent starts on a thread while the source reads and compresses.

Starting the destination's agent from the source host costs an ssh login and a python3
start there (about 0.8 s between the bench's namespaces, bench/README.md).  The link is
idle meanwhile, the source's cores need not be: the push reads, digests and compresses its
first frames (up to AHEAD wire bytes, held in memory) while a thread starts the peer and
opens its write stream, and they go out in order once the peer has answered.  The codec
is chosen before the peer answers from the codecs the client saw the destination's agent
offer (the same host and agent file), and checked against the peer's own HELLO.
Python 3.5, stdlib only.
"""

import threading

from .protocol import best_codec

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

AHEAD = 48 * 1024 * 1024  #: wire bytes held at most before the peer answers


class PeerStarter(object):
    """``start(*args)`` on a thread; ``wait()`` returns its peer or raises its error."""

    def __init__(self, start, *args):
        self.peer = None
        self.error = None  # type: typing.Optional[BaseException]
        self.thread = threading.Thread(target=self._run, args=(start,) + args,
                                       name="vmigrate-peer-start")
        self.thread.daemon = True
        self.thread.start()

    def _run(self, start, *args):
        try:
            self.peer = start(*args)
        except BaseException as exc:  # noqa - raised again by wait()
            self.error = exc

    def ready(self):
        return not self.thread.is_alive()

    def wait(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.peer

    def abandon(self):
        """The push failed before it took the peer: stop the peer if it started."""
        self.thread.join()
        if self.peer is not None:
            self.peer.kill()


class Ahead(object):
    """``send`` for the packer: frames are held until the peer has answered (or AHEAD wire
    bytes are held: then it waits for the peer), then go to ``took(peer)``'s sender."""

    def __init__(self, starter, took, cap=AHEAD):
        self.starter, self.took, self.cap = starter, took, cap
        self.held = []  # type: typing.List[typing.Any]
        self.bytes = 0
        self.out = None  # type: typing.Any

    def send(self, ftype, payload, arg, flags, size):
        if self.out is None:
            if not self.starter.ready() and self.bytes + len(payload) <= self.cap:
                self.held.append((ftype, payload, arg, flags, size))
                self.bytes += len(payload)
                return
            self.release()
        self.out(ftype, payload, arg, flags, size)

    def release(self):
        """Wait for the peer (its error is raised here) and send what is held."""
        if self.out is not None:
            return
        self.out = self.took(self.starter.wait())
        held, self.held = self.held, []
        for frame in held:
            self.out(*frame)


def pick_codec(want, offered):
    """The codec of a push: "auto" is the fastest both agents have (zstd, lz4, zlib: a
    module or a binary on either host); a named codec the peer lacks is refused (never
    a silent fallback)."""
    if not want:
        return None
    if want == "auto":
        return best_codec(offered) or "zlib"
    if want not in offered:
        raise ValueError("compression {} requested but the peer agent offers only {}".format(
            want, ", ".join(offered) or "none"))
    return want
