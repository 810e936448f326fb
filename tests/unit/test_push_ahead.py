"""Direct mode: the source agent reads and packs while the destination's agent starts.

Starting the peer from the source host is an ssh login and a python3 start (about 0.8 s
between the bench's namespaces, bench/README.md); the source's cores were idle meanwhile.
Here the peer is a real agent process behind a gate (a shell that waits for a file before
it execs the agent, standing for ssh's login), the source a real Agent in this process:
while the gate is closed the source must have read the disk already (this process's
``rchar`` in /proc/self/io, proc(5)), and once it opens the copy is exact.  What only a
real pair of hosts would show: how long their ssh login and python start take.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from pathlib import Path

import pytest

from tests.unit.pushkit import FrameSink, gate_wait, peer_argv, two_roots
from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.agent.server import Agent

MiB = 1 << 20
def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_source_reads_while_the_peer_starts(tmp_path: Path) -> None:
    """Before: the push waited for the peer's HELLO before reading a byte (rchar stayed
    put while the gate was closed)."""
    if not Path("/proc/self/io").exists():
        pytest.skip("no /proc/self/io")
    (src, dst), gate = two_roots(tmp_path), tmp_path / "gate"
    size = 40 * MiB
    data = b"".join(os.urandom(256 * 1024).hex().encode() for _ in range(size // (512 * 1024)))
    (src / "d").write_bytes(data)
    with open(dst / "d", "wb") as f:
        f.truncate(size)
    argv = peer_argv(dst, before=gate_wait(gate))
    out = FrameSink()
    agent = Agent(str(src), None, out)
    req = {"op": "push", "path": "d", "dest_path": "d", "extents": [[0, size]], "argv": argv,
           "compress": "zlib", "peer_compression": ["zlib"], "checkpoint": 8 * MiB}
    before = _rchar()
    pusher = threading.Thread(target=agent.op_push, args=(req,))
    pusher.start()
    try:
        deadline = time.monotonic() + 20
        while _rchar() - before < 16 * MiB and time.monotonic() < deadline and pusher.is_alive():
            time.sleep(0.05)
        read_ahead = _rchar() - before
        assert not gate.exists()
        assert read_ahead >= 16 * MiB, f"the source read {read_ahead} bytes before the peer started"
    finally:
        gate.touch()
        pusher.join(120)
    assert not pusher.is_alive()
    assert (dst / "d").read_bytes() == data
    # the stream ended with END (no ERR), its ACKs carried checkpoints
    import io

    r = io.BytesIO(b"".join(out.parts))
    types = []
    while r.tell() < len(r.getvalue()):
        types.append(proto.read_frame(r)[0])
    assert types[-1] == proto.END and proto.ERR not in types, types
    assert types.count(proto.ACK) >= 2, types


def test_push_takes_the_peer_the_probe_kept(tmp_path: Path) -> None:
    """The preflight's probe (``keep``) leaves its peer up and the push takes it: one peer
    start per command, not two (each an ssh login and a python3 start on the destination).
    Before: the probe closed its peer and the push started another (two starts counted)."""
    (src, dst), starts = two_roots(tmp_path), tmp_path / "starts"
    data = os.urandom(3 * MiB)
    (src / "d").write_bytes(data)
    (dst / "d").write_bytes(b"")
    argv = peer_argv(dst, before=f"echo start >> {shlex.quote(str(starts))}")
    out = FrameSink()
    agent = Agent(str(src), None, out)
    probed = agent.op_probe_peer({"op": "probe_peer", "argv": argv, "keep": True})
    assert probed["ok"], probed
    agent.op_push({"op": "push", "path": "d", "dest_path": "d", "extents": [[0, len(data)]],
                   "argv": argv})
    assert (dst / "d").read_bytes() == data
    assert starts.read_text().split() == ["start"]
    # a second push starts its own peer (the kept one was taken)
    agent.op_push({"op": "push", "path": "d", "dest_path": "d", "extents": [[0, len(data)]],
                   "argv": argv})
    assert starts.read_text().split() == ["start", "start"]
