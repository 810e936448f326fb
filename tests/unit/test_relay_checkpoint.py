"""A relayed copy goes on while the destination makes a checkpoint durable.

Every ``checkpoint_bytes`` the relay sends FLUSH; the destination's agent drains its
writes and ``fsync``s them (0.04-0.05 s per 64 MiB on this machine's disk, bench/README.md)
before it answers ACK.  The relay used to wait for that ACK before it read the next chunk
from the source, so the link to the destination idled during every fsync (15 per GiB).
Now one FLUSH stays in flight: its ACK is read at the next checkpoint, and only then is
the checkpoint recorded.

The destination here is a real agent process whose ``os.fsync`` waits, at its first call,
for a gate file (a slow disk stands for it); the source a real agent; the relay the
engine's copier.  While the first fsync waits, the relay must have carried more data and
recorded no checkpoint (nothing is durable yet); after it, the copy is exact and every
recorded checkpoint was acknowledged.  What only real hosts would show: their disks' fsync
times (bench/seed_timeline.py shows the link's idle time in relay mode).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.dataplane.agentchannel import AgentChannel
from vmigrate_lib.dataplane.client import AgentDatastore
from vmigrate_lib.dataplane.datastore import ExtentWriter
from vmigrate_lib.dataplane.retry import RetryPolicy
from vmigrate_lib.dataplane.ssh.writer import ResilientWriter
from vmigrate_lib.dataplane.transport import LocalTransport
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.extents import Extent

MiB = 1 << 20

#: the destination agent, with its first ``{call}`` of disk ``d`` held until GATE exists
#: (MARK says it began; the agent's storage probe at HELLO fsyncs a file of its own)
HELD_CALL = """
import os, sys, time
real, calls = os.{call}, []
def held(fd, *args):
    if os.readlink("/proc/self/fd/%d" % fd).endswith("/d"):
        calls.append(fd)
    if len(calls) == 1 and not os.path.exists({mark!r}):
        open({mark!r}, "w").close()
        while not os.path.exists({gate!r}):
            time.sleep(0.02)
    return real(fd, *args)
os.{call} = held
from vmigrate_lib.dataplane.agent.server import main
sys.exit(main(sys.argv[3:]))
"""


def _slow_disk_python(tmp_path: Path, mark: Path, gate: Path, call: str = "fsync") -> Path:
    """A ``python`` for LocalTransport: runs the agent with its first ``call`` held."""
    code = HELD_CALL.format(call=call, mark=str(mark), gate=str(gate))
    script = tmp_path / f"python-slow-{call}"
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(code)} \"$@\"\n")
    script.chmod(0o755)
    return script


class ResilientDatastore(AgentDatastore):
    """An agent datastore whose writer replays after a lost connection, as over SSH."""

    def open_writer(self, path: str) -> ExtentWriter:
        return ResilientWriter(self.channel, path)


def _disks(tmp_path: Path, size: int) -> tuple[Path, Path, bytes]:
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    data = os.urandom(size)
    (ra / "d").write_bytes(data)
    (rb / "d").write_bytes(b"")
    return ra, rb, data


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"the destination never began its held call ({path.name})"


def _copier(src: Any, dst: Any, size: int, recorded: list[int], failed: list[BaseException],
            checkpoint: int = 4 * MiB, **kw: Any) -> threading.Thread:
    """``copy_extents`` of disk d, checkpoints every ``checkpoint`` bytes into
    ``recorded``, on a thread (started); what it raised goes into ``failed``."""
    def run() -> None:
        try:
            copy_extents(src, "d", dst, "d", [Extent(0, size)], checkpoint_bytes=checkpoint,
                         on_checkpoint=recorded.append, **kw)
        except BaseException as exc:  # reported by the test
            failed.append(exc)

    copier = threading.Thread(target=run)
    copier.start()
    return copier


def _release(gate: Path, copier: threading.Thread, src: Any, dst: Any) -> None:
    """Let the held fsync go, wait for the copy, close both ends."""
    gate.touch()
    copier.join(60)
    src.close()
    dst.close()


def _assert_exact(copier: threading.Thread, failed: list[BaseException], rb: Path,
                  data: bytes) -> None:
    assert not copier.is_alive() and not failed, failed
    assert (rb / "d").read_bytes() == data


@pytest.mark.parametrize("kind", [AgentDatastore, ResilientDatastore])
def test_relay_streams_on_while_the_destination_fsyncs(tmp_path: Path,
                                                       kind: type[AgentDatastore]) -> None:
    """Before: the relay stopped at the first checkpoint (progress stayed at 4 MiB) until
    the destination's ACK came; now it carries the next chunks meanwhile (both writers:
    the plain one, and the one that replays over SSH)."""
    size = 16 * MiB
    ra, rb, data = _disks(tmp_path, size)
    mark, gate = tmp_path / "in-fsync", tmp_path / "gate"
    src = AgentDatastore("a", LocalTransport(str(ra)))
    dst = kind("b", LocalTransport(str(rb), python=str(_slow_disk_python(tmp_path, mark, gate))))
    progress: list[int] = []
    recorded: list[int] = []
    failed: list[BaseException] = []
    copier = _copier(src, dst, size, recorded, failed,
                     on_progress=lambda done, _total: progress.append(done))
    try:
        _wait_for(mark)
        time.sleep(0.5)  # let the relay go as far as the pipes let it
        assert not gate.exists()
        carried = max(progress)
        assert carried >= 5 * MiB, f"the relay stopped at {carried} bytes during the first fsync"
        assert recorded == [], f"checkpoints recorded before any ACK: {recorded}"
    finally:
        _release(gate, copier, src, dst)
    _assert_exact(copier, failed, rb, data)
    # every mark recorded was acknowledged (in order), the last is the whole copy
    assert recorded == sorted(recorded) and recorded[-1] == size, recorded
    assert len(recorded) >= 3, recorded


def test_destination_lost_during_a_checkpoint_in_flight_replays(tmp_path: Path) -> None:
    """The destination's agent dies while the first FLUSH waits for its fsync and the next
    chunks are on their way: nothing was acknowledged, so nothing is recorded; the writer
    reconnects, replays every chunk since the last ACK (all of them) with one FLUSH for the
    lost ones, and the copy is exact, every recorded checkpoint acknowledged."""
    size = 16 * MiB
    ra, rb, data = _disks(tmp_path, size)
    mark, gate = tmp_path / "in-fsync", tmp_path / "gate"
    src = AgentDatastore("a", LocalTransport(str(ra)))
    transport = LocalTransport(str(rb), python=str(_slow_disk_python(tmp_path, mark, gate)))
    channel = AgentChannel("b", transport, retry=RetryPolicy(retries=2, backoff=0.05))
    dst = ResilientDatastore("b", transport, channel)
    recorded: list[int] = []
    failed: list[BaseException] = []
    copier = _copier(src, dst, size, recorded, failed)
    try:
        _wait_for(mark)
        time.sleep(0.3)
        pid = int(channel.hello["pid"])
        os.kill(pid, signal.SIGKILL)  # the new agent finds MARK: its fsyncs are not held
        assert recorded == []
    finally:
        gate.touch()
        copier.join(60)
        src.close()
        dst.close()
    assert not copier.is_alive() and not failed, failed
    assert channel.reconnects >= 1
    assert any(e["event"] == "resume" and e["what"] == "write" for e in channel.events)
    assert (rb / "d").read_bytes() == data
    assert recorded == sorted(recorded) and recorded[-1] == size, recorded


def test_destination_writes_on_while_its_checkpoint_fsyncs(tmp_path: Path) -> None:
    """The destination's own loop goes on while a FLUSH's fsync runs (agent/durable.py):
    with the first fsync held, the chunks sent after that FLUSH (4-8 MiB, up to the next
    FLUSH, where the relay waits for the first ACK) are written into the file, and still
    nothing is acknowledged.  Before: the agent's loop sat in fsync, the file stopped at
    the FLUSH (4 MiB) and everything behind it waited in the pipes; at 1 Gbit/s such stalls
    left two cores partly idle (bench/README.md, 2026-12-02).  What only a real host shows:
    its disk's fsync time, which this hides or not from the copy."""
    size = 16 * MiB
    ra, rb, data = _disks(tmp_path, size)
    mark, gate = tmp_path / "in-fsync", tmp_path / "gate"
    src = AgentDatastore("a", LocalTransport(str(ra)))
    dst = AgentDatastore("b", LocalTransport(str(rb), python=str(
        _slow_disk_python(tmp_path, mark, gate))))
    recorded: list[int] = []
    failed: list[BaseException] = []
    copier = _copier(src, dst, size, recorded, failed)
    try:
        _wait_for(mark)
        deadline = time.monotonic() + 20
        while (rb / "d").read_bytes()[4 * MiB:8 * MiB] != data[4 * MiB:8 * MiB]:
            assert time.monotonic() < deadline, (
                "the destination wrote nothing past its first FLUSH while that fsync ran")
            time.sleep(0.05)
        assert not gate.exists() and recorded == [], recorded  # nothing durable said yet
    finally:
        _release(gate, copier, src, dst)
    _assert_exact(copier, failed, rb, data)
    assert recorded == sorted(recorded) and recorded[-1] == size, recorded


def test_destination_reads_on_while_a_write_is_held(tmp_path: Path) -> None:
    """The destination's loop goes on reading the stream while a write waits for its disk
    (agent/unpacking.py: frames are written in order by a thread of their own): with the
    first ``pwrite`` of the disk held, the relay hands over 12 of the 16 MiB (no FLUSH
    comes before END here).  Before: the loop sat in that ``pwrite``, its pipe filled, and
    the relay stopped at 2 MiB; at 1 Gbit/s every write of a 16 MiB frame into
    new pages held the link still for its length (bench/README.md, 2026-12-02, third
    session).  What only a real host shows: how long its datastore's writes take."""
    size = 16 * MiB
    ra, rb, data = _disks(tmp_path, size)
    mark, gate = tmp_path / "in-pwrite", tmp_path / "gate"
    src = AgentDatastore("a", LocalTransport(str(ra)))
    dst = AgentDatastore("b", LocalTransport(str(rb), python=str(
        _slow_disk_python(tmp_path, mark, gate, call="pwrite"))))
    progress: list[int] = []
    recorded: list[int] = []
    failed: list[BaseException] = []
    copier = _copier(src, dst, size, recorded, failed, checkpoint=64 * MiB,
                     on_progress=lambda done, _total: progress.append(done))
    try:
        _wait_for(mark)
        deadline = time.monotonic() + 20
        while max(progress, default=0) < 12 * MiB:
            assert time.monotonic() < deadline, (
                f"the relay stopped at {max(progress, default=0)} bytes while the "
                "destination's first write was held")
            time.sleep(0.05)
        assert not gate.exists() and (rb / "d").stat().st_size == 0  # the write still held
    finally:
        _release(gate, copier, src, dst)
    _assert_exact(copier, failed, rb, data)
