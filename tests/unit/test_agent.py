"""The data-plane agent over a real pipe: reads, writes, holes, hashes, faults."""

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vmigrate_lib.dataplane import open_local_datastore
from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.client import AgentDatastore
from vmigrate_lib.dataplane.datastore import Chunk
from vmigrate_lib.dataplane.transport import LocalTransport, local_agent_argv
from vmigrate_lib.errors import AgentError, NoSpaceLeft
from vmigrate_lib.extents import Extent

MiB = 1 << 20


@pytest.fixture
def two(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = open_local_datastore("a", str(tmp_path / "a"))
    b = open_local_datastore("b", str(tmp_path / "b"))
    yield tmp_path, a, b
    a.close()
    b.close()


def _fill(path: Path, writes: dict[int, bytes], size: int) -> None:
    with open(path, "r+b" if path.exists() else "w+b") as f:
        f.truncate(size)
        for off, data in writes.items():
            f.seek(off)
            f.write(data)


def test_copy_skips_holes_and_zero_blocks_and_is_exact(two) -> None:
    root, a, b = two
    data = {0: os.urandom(100_000), 5 * MiB: bytes(256 * 1024), 9 * MiB + 7: os.urandom(70_000)}
    _fill(root / "a" / "d", data, 16 * MiB)
    b.create_disk("d", 16 * MiB)
    with b.open_writer("d") as w:
        for c in a.read_extents("d", [Extent(0, 16 * MiB)]):
            w.write(c)
    summary = a.last_summary
    assert summary["read"] < 1 * MiB  # holes were never read
    assert (root / "a" / "d").read_bytes() == (root / "b" / "d").read_bytes()
    # the explicit zero block travelled as a hole and stays unallocated at b
    assert os.stat(root / "b" / "d").st_blocks * 512 < 600 * 1024


def test_hole_frame_clears_old_data(two) -> None:
    root, _a, b = two
    b.create_disk("d", 1 * MiB)
    _fill(root / "b" / "d", {0: b"x" * MiB}, MiB)
    with b.open_writer("d") as w:
        w.write(Chunk(65536, 65536, None))
    got = (root / "b" / "d").read_bytes()
    assert got[65536:131072] == bytes(65536) and got[:65536] == b"x" * 65536


def test_hash_blocks_match_hashlib_and_are_equal_for_hole_vs_written_zeros(two) -> None:
    root, a, b = two
    payload = os.urandom(3 * MiB)
    _fill(root / "a" / "d", {MiB: payload}, 8 * MiB)
    _fill(root / "b" / "d", {MiB: payload, 6 * MiB: bytes(MiB)}, 8 * MiB)  # zeros written
    da = list(a.hash_blocks("d", MiB, "sha256"))
    db = list(b.hash_blocks("d", MiB, "sha256"))
    assert [d.offset for d in da] == list(range(0, 8 * MiB, MiB))
    assert da == db
    assert da[1].digest == hashlib.sha256(payload[:MiB]).digest()


def test_algorithms_include_stdlib_fallbacks(two) -> None:
    _, a, _ = two
    algos = a.algorithms()
    assert {"sha1", "sha256", "md5"} <= set(algos)


def test_paths_cannot_escape_the_datastore(two) -> None:
    _, a, _ = two
    with pytest.raises(AgentError, match="escapes"):
        a.stat("../../etc/passwd")


def test_create_disk_refuses_to_overwrite(two) -> None:
    _, a, _ = two
    a.create_disk("d", MiB)
    with pytest.raises(AgentError, match="exists"):
        a.create_disk("d", MiB)


def test_corrupted_frame_is_detected(tmp_path: Path) -> None:
    """A flipped payload bit fails the frame checksum; the agent stops with code 4."""
    hello = json.dumps({"version": proto.PROTOCOL_VERSION}).encode()
    req = json.dumps({"op": "ping"}).encode()
    frame = bytearray(proto.pack_frame(proto.REQ, req) + req)
    frame[-2] ^= 0x01
    data = proto.pack_frame(proto.HELLO, hello) + hello + bytes(frame)
    argv, env = local_agent_argv(sys.executable, str(tmp_path))
    out = subprocess.run(argv, env=env, input=data, capture_output=True, timeout=30)
    assert out.returncode == 4
    assert b"checksum mismatch" in out.stderr


def test_version_mismatch_is_refused(tmp_path: Path) -> None:
    hello = json.dumps({"version": 999}).encode()
    argv, env = local_agent_argv(sys.executable, str(tmp_path))
    out = subprocess.run(argv, env=env, input=proto.pack_frame(proto.HELLO, hello) + hello,
                         capture_output=True, timeout=30)
    assert out.returncode == 3
    assert b"protocol" in out.stdout


def test_full_disk_is_a_clear_error_and_nothing_acked_beyond(tmp_path: Path) -> None:
    """A real small filesystem (tmpfs) fills up: NoSpaceLeft, with what was acknowledged."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        ds = open_local_datastore("small", str(mnt))
        ds.create_disk("d", 64 * MiB)
        acked = 0
        with pytest.raises(NoSpaceLeft, match="no space left"):
            w = ds.open_writer("d")
            for i in range(16):
                w.write(Chunk(i * MiB, MiB, os.urandom(MiB)))
                if i % 2:
                    acked = w.checkpoint()
            w.close()
        assert 0 < acked < 16 * MiB
        ds.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_close_after_the_agent_died_does_not_raise(tmp_path: Path) -> None:
    """close() says goodbye best-effort: a dead pipe (BrokenPipeError at flush) is no error.

    The local transport buffers its pipe, as SSH does, so a dead peer shows only at flush().
    """
    ds = AgentDatastore("a", LocalTransport(str(tmp_path)))
    assert ds.free_space() > 0
    pid = int(ds.hello["pid"])  # the agent, this process's child through the local pipe
    os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead; the transport reaps it
    ds.close()  # must not raise
    assert not ds.channel.connected


def test_grow_disk_extends_sparsely_and_never_shrinks(two) -> None:
    root, a, _ = two
    a.create_disk("d.vmdk", 4 * MiB)
    with a.open_writer("d.vmdk") as w:
        w.write(Chunk(MiB, 4096, b"\x5a" * 4096))
    before = (root / "a" / "d.vmdk").read_bytes()
    a.grow_disk("d.vmdk", 12 * MiB)
    a.grow_disk("d.vmdk", 12 * MiB)  # same size again: a no-op (safe to retry)
    st = a.stat("d.vmdk")
    assert st is not None and st.size == 12 * MiB
    assert st.allocated < MiB  # the new area is a hole
    data = (root / "a" / "d.vmdk").read_bytes()
    assert data[: 4 * MiB] == before and not data[4 * MiB :].strip(b"\0")
    with pytest.raises(AgentError, match="refusing to shrink"):
        a.grow_disk("d.vmdk", 8 * MiB)
    assert os.stat(root / "a" / "d.vmdk").st_size == 12 * MiB
    with pytest.raises(AgentError):
        a.grow_disk("missing.vmdk", 8 * MiB)
