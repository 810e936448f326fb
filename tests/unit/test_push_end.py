"""The end of a direct push: the client gets END as soon as every byte is durable.

After the destination's END (its fsync done and its read-back digests sent), the source
agent used to close the peer first (quit, then wait for the ssh process, that is, for the
destination's python to exit and sshd to report it) and only then send END to the client:
the whole command waited for the peer's exit.  Here the source is a real Agent in this
process and the peer a real agent process behind a shell that holds its exit until a gate
file exists (standing for the ssh login's exit on a real host): the client's END must be
written and flushed while the gate is closed, and the peer is still reaped afterwards.
What only a real pair of hosts would show: how long their python exit and ssh teardown take
(bench/seed_timeline.py measures it between namespace sshd peers).
"""

from __future__ import annotations

import io
import os
import shlex
import sys
import threading
import time
from pathlib import Path

from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.agent.server import Agent

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[2]


class _Out:
    """The client's side of the source agent's stdout: what was flushed, so far."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.flushed = 0  #: parts handed over by the last flush
        self.lock = threading.Lock()

    def write(self, b: bytes) -> int:
        with self.lock:
            self.parts.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        with self.lock:
            self.flushed = len(self.parts)

    def frames(self) -> list[int]:
        """The types of the frames flushed so far."""
        with self.lock:
            data = b"".join(self.parts[:self.flushed])
        r, types = io.BytesIO(data), []
        while r.tell() < len(data):
            types.append(proto.read_frame(r)[0])
        return types


def test_end_reaches_the_client_before_the_peer_exits(tmp_path: Path) -> None:
    """Before: END was written only after ``Peer.close`` had waited for the peer's process
    (here: the gate, up to its 10 s timeout), so no END was flushed while the gate was
    closed."""
    src, dst, gate = tmp_path / "a", tmp_path / "b", tmp_path / "gate"
    src.mkdir()
    dst.mkdir()
    data = os.urandom(6 * MiB)
    (src / "d").write_bytes(data)
    (dst / "d").write_bytes(b"")
    agent_cmd = " ".join(shlex.quote(w) for w in (
        sys.executable, "-m", "vmigrate_lib.dataplane.agent", "--root", str(dst)))
    argv = ["sh", "-c", f"cd {shlex.quote(str(REPO))} && {agent_cmd}; "
                        f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done"]
    out = _Out()
    agent = Agent(str(src), None, out)
    req = {"op": "push", "path": "d", "dest_path": "d", "extents": [[0, len(data)]],
           "argv": argv, "checkpoint": 2 * MiB,
           "dest_digest": {"algorithm": "sha256", "block": MiB}}
    pusher = threading.Thread(target=agent.op_push, args=(req,))
    pusher.start()
    try:
        deadline = time.monotonic() + 8
        while proto.END not in out.frames() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not gate.exists()
        types = out.frames()
        assert types and types[-1] == proto.END, f"no END flushed while the peer runs: {types}"
        assert pusher.is_alive(), "the push returned without waiting for its peer"
        # every byte was durable when END left: the destination file is whole already
        assert (dst / "d").read_bytes() == data
    finally:
        gate.touch()
        pusher.join(30)
    assert not pusher.is_alive()
    types = out.frames()
    assert proto.ERR not in types and types.count(proto.END) == 1, types
    assert types.count(proto.ACK) >= 2, types  # checkpoints acknowledged on the way
    assert proto.DIGESTS in types  # the destination's read-back digests, before END
