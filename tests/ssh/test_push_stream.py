"""A slow direct push through one zstd stream, between two real agents over real sshd
(agent/packing.py, unpacking.py; issue 13 item 1: a seed at the link's speed).

Hosts a and b are the session's namespaces (tests/ssh/conftest.py); each gets a second
sshd whose sessions see an empty ``/proc/stat`` (a mount namespace binds an empty file
over it), as ``packing.cpu_sample`` expects of ESXi, which has no Linux procfs: the
packer's idle-core gate then leaves the decision to the link alone, so the stream starts
whatever else this machine runs (CI runs three test workers on two cores).  The link is
the agent's own ``bwlimit`` (12-20 MB/s), which blocks the sender as a slow link does.
Both hosts' python3 has no zstandard module: both agents run libzstd through ctypes
(``ZSTD_compressStream2`` with ZSTD_e_flush, ``ZSTD_decompressStream``).

What this proves: the stream starts on a slow push, crosses sshd between two agents,
decodes in order with checkpoints, finds repeats a 16 MiB frame cannot, and a push broken
late resumes to an identical copy.  What only a real ESXi host shows: whether its
python3 finds a libzstd at all (else zlib, and no stream) and how much memory its
userworld grants the 64 MiB windows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.sshd import SshdServer, SshHost, start_sshd, write_known_hosts
from tests.ssh.sshdp import MiB, SshHosts, agents_serving, kill_session, open_agent_ds
from tests.ssh.test_codec_lib import joined_copy
from vmigrate_lib.dataplane.sshconfig import DirectRoute
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.extents import Extent

pytestmark = pytest.mark.netns

PORT = 2222  #: the second sshd's port in each namespace


@pytest.fixture(scope="module")
def no_procstat(ssh_hosts: SshHosts) -> Iterator[tuple[SshHost, SshHost, str]]:
    """sshd on a and b whose sessions read ``/proc/stat`` as empty; a known_hosts with
    both (for a's ssh to b)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux)")
    wd = tempfile.mkdtemp(prefix="vmg-nostat-")
    os.chmod(wd, 0o755)
    empty = os.path.join(wd, "empty")
    Path(empty).write_bytes(b"")
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /proc/stat && exec "$@"', empty]
    servers: dict[str, SshdServer] = {}
    try:
        for role in ("a", "b"):
            servers[role] = start_sshd(
                f"nostat-{role}", ip=ssh_hosts.topology.ip(role), port=PORT,
                netns=ssh_hosts.topology.netns(role), client_key=ssh_hosts.client_key,
                authorized_keys=[ssh_hosts.peer_key.pub_line], wrap=wrap)
        kh = write_known_hosts(os.path.join(wd, "known_hosts"),
                               [s.host for s in servers.values()])
        a = servers["a"].host
        seen = subprocess.run(a.ssh_argv("wc -c < /proc/stat"),
                              capture_output=True, text=True, timeout=30)
        assert seen.stdout.strip() == "0", (seen.stdout, seen.stderr)
        yield a, servers["b"].host, kh
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(wd, ignore_errors=True)


def _hex(n: int) -> bytes:
    """``n`` MiB of hex text, each MiB its own (about half after zstd)."""
    return b"".join(os.urandom(MiB // 2).hex().encode() for _ in range(n))


def _pair(hosts: tuple[SshHost, SshHost, str], peer_key: str, tmp_path: Path, data: bytes,
          rate: float) -> tuple[Any, Any, Path]:
    """Disk ``d`` holding ``data`` on a; a pushes directly to b, auto codec, ``rate``."""
    a_host, b_host, kh = hosts
    os.chmod(tmp_path, 0o755)
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    (ra / "d").write_bytes(data)
    route = DirectRoute(identity=peer_key, known_hosts=kh)
    a = open_agent_ds(a_host, ra, mode="direct", direct=route, compress="auto", bwlimit=rate,
                      retries=3)
    return a, open_agent_ds(b_host, rb), rb


def test_a_slow_push_finds_repeats_beyond_a_frame(
        no_procstat: tuple[SshHost, SshHost, str], ssh_hosts: SshHosts, tmp_path: Path) -> None:
    """20 MiB of text, then the same again up to 160 MiB (each repeat 20 MiB back, beyond a
    16 MiB frame), pushed at 12 MB/s: after the windows that find the link the limit the
    chunks go through the stream (``packer.stream``), where the repeats cost almost
    nothing: under 40% of the disk on the wire, where frames alone send about 55% (every
    MiB of hex about half).  The copy is exact and the checkpoints in order."""
    first = _hex(20)
    data = (first * 8)[:160 * MiB]
    a, b, rb = _pair(no_procstat, ssh_hosts.peer_key.path, tmp_path, data, 12e6)
    _ckpts, stats, summary = joined_copy(a, b, rb, len(data), data)
    assert summary.get("stream", 0) >= 32, summary
    assert stats.bytes_wire < 0.4 * len(data), (stats, summary)


def test_a_push_broken_while_streaming_resumes_identical(
        no_procstat: tuple[SshHost, SshHost, str], ssh_hosts: SshHosts, tmp_path: Path) -> None:
    """128 MiB of text at 20 MB/s; b's session is killed once 112 MiB are acknowledged
    (the stream runs from about the fifth 16 MiB frame on: the test above); a resumes from
    the last acknowledged offset with a new stream on both sides (FLAG_ZSTREAM_FIRST), and
    the copy is exact.  A decoder left from the broken stream, or a piece taken for a
    frame, would write other bytes.  The broken attempt's own counts are lost with it
    (its END never came): that the kill fell inside the stream is by its offset."""
    data = _hex(128)
    a, b, rb = _pair(no_procstat, ssh_hosts.peer_key.path, tmp_path, data, 20e6)
    b.create_disk("d", len(data))  # b's own agent (and its launcher) up before a's peer

    def agents_on_b() -> set[int]:
        return agents_serving(rb)

    before = agents_on_b()  # b's own agent and its launcher: not the push's peer
    killed: list[int] = []

    def on_ckpt(off: int) -> None:
        if off >= 112 * MiB and not killed:
            peers = sorted(agents_on_b() - before - {b.hello.get("pid")})
            if peers:
                killed.append(kill_session(peers[-1]))

    try:
        ok, why = a.probe_direct(b)  # the peer kept for the push, as the preflight does
        assert ok, why
        copy_extents(a, "d", b, "d", [Extent(0, len(data))], checkpoint_bytes=4 * MiB,
                     on_checkpoint=on_ckpt)
        events = list(a.events)
    finally:
        a.close()
        b.close()
    assert killed and any(e["event"] == "resume" and e["what"] == "push" for e in events), (
        killed, before, events)
    assert (rb / "d").read_bytes() == data
