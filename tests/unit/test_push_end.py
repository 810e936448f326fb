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

import os
import threading
import time
from pathlib import Path

from tests.unit.pushkit import FrameSink, gate_wait, peer_argv, two_roots
from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.agent.server import Agent

MiB = 1 << 20


def test_end_reaches_the_client_before_the_peer_exits(tmp_path: Path) -> None:
    """Before: END was written only after ``Peer.close`` had waited for the peer's process
    (here: the gate, up to its 10 s timeout), so no END was flushed while the gate was
    closed."""
    (src, dst), gate = two_roots(tmp_path), tmp_path / "gate"
    data = os.urandom(6 * MiB)
    (src / "d").write_bytes(data)
    (dst / "d").write_bytes(b"")
    argv = peer_argv(dst, after=gate_wait(gate))
    out = FrameSink()
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
