"""zstd and lz4 through the host's shared libraries (issue 13 item 1), over real sshd.

The hosts' python3 here has no zstandard module (as ESXi's has none); the hosts have
``libzstd.so.1`` and ``liblz4.so.1`` (Debian's libzstd1 1.5 and liblz4-1 1.9), which the
agent calls through ctypes: no process per frame, and ctypes releases the GIL during the
call, so the packer's threads compress on several cores.  The frames are the tools'
formats: a host that runs the tool (``ssh_tools_host``: tools, libraries masked) decodes
them, and its frames decode here.  What only a real ESXi host would show: whether it ships
libzstd or liblz4 at all (not known here; the ``ssh_stdlib_host`` profile stands for one
that does not) and how many cores its agent gets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.peers.sshd import SshHost
from tests.ssh import hostprofile
from tests.ssh.sshdp import MiB, SshHosts, open_agent_ds
from tests.ssh.test_codec_bin import _disk
from vmigrate_lib.dataplane.sshconfig import DirectRoute
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.extents import Extent

ssh_tools_host = hostprofile.ssh_tools_host  # the tools, not the libraries (fixture)

# roots: the two datastore folders, from tests/ssh/conftest.py


def test_agent_offers_the_host_libraries(ssh_loopback: SshHost, roots: tuple[Path, Path]) -> None:
    """HELLO lists zstd and lz4 run by the host's libraries (``codec_impl`` ``lib``), auto
    picks zstd, and a relayed copy through them is byte-identical, holes kept, the summary
    naming ``zstd-lib``.  Before: ``codec_impl`` said ``bin`` (a process per frame); no
    ``zstd-lib`` codec was offered."""
    ra, rb = roots
    size = 24 * MiB
    want = _disk(ra / "d", size)
    a = _open(ssh_loopback, ra, compress="auto", bwlimit=40_000_000)
    b = _open(ssh_loopback, rb)
    try:
        a.free_space()
        assert a.hello["compression"] == ["lz4", "zlib", "zstd"], a.hello
        assert a.hello["codec_impl"] == {"zlib": "module", "zstd": "lib", "lz4": "lib"}
        assert a.codec == "zstd"
        b.create_disk("d", size)
        stats = copy_extents(a, "d", b, "d", [Extent(0, size)], checkpoint_bytes=4 * MiB,
                             on_checkpoint=lambda _o: None)
    finally:
        a.close()
        b.close()
    assert (rb / "d").read_bytes() == want
    assert stats.codec == "zstd-lib" and stats.frames_packed > 0, stats
    assert stats.bytes_zero >= 3 * MiB and stats.bytes_wire < stats.bytes_sent, stats


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
@pytest.mark.parametrize("lib_side", ["source", "destination"])
def test_library_and_tool_read_each_others_frames(
        ssh_loopback: SshHost, ssh_tools_host: SshHost, roots: tuple[Path, Path],
        codec: str, lib_side: str) -> None:
    """One side's agent runs the library, the other's the tool (``zstd``/``lz4`` -d: the
    peer that is not our code): frames made by ``ZSTD_compressCCtx``/``LZ4F_compressFrame``
    decode with the tool, and the tool's frames (no content size) decode with the
    library's streaming calls; the copy is byte-identical.  Before: no library codec."""
    ra, rb = roots
    size = 24 * MiB
    want = _disk(ra / "d", size)
    src_host, dst_host = ((ssh_loopback, ssh_tools_host) if lib_side == "source"
                          else (ssh_tools_host, ssh_loopback))
    a = _open(src_host, ra, compress=codec, bwlimit=40_000_000)
    b = _open(dst_host, rb, compress=codec)
    try:
        b.create_disk("d", size)
        stats = copy_extents(a, "d", b, "d", [Extent(0, size)], checkpoint_bytes=4 * MiB,
                             on_checkpoint=lambda _o: None)
        impl_b = b.hello["codec_impl"][codec]
    finally:
        a.close()
        b.close()
    assert (rb / "d").read_bytes() == want
    label = f"{codec}-lib" if lib_side == "source" else f"{codec}-bin"
    assert stats.codec == label and stats.frames_packed > 0, stats
    assert impl_b == ("bin" if lib_side == "source" else "lib")


def _direct_pair(hosts: SshHosts, tmp_path: Path, size: int,
                 make: Callable[[Path, int], bytes], **extra: Any) -> tuple[Any, Any, Path, bytes]:
    """Folders a and b (0755: both namespaces' logins reach them), ``make``'s ``size``
    bytes as disk ``d`` on a, and the datastores: a pushing directly to b, auto codec."""
    os.chmod(tmp_path, 0o755)
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    want = make(ra / "d", size)
    route = DirectRoute(identity=hosts.peer_key.path, known_hosts=hosts.known_hosts_path)
    a = _open(hosts.a, ra, mode="direct", direct=route, compress="auto", **extra)
    return a, _open(hosts.b, rb), rb, want


@pytest.mark.netns
def test_direct_push_through_zstd_library_with_frequent_checkpoints(
        ssh_hosts: SshHosts, tmp_path: Path) -> None:
    """Direct mode, auto, between two namespaces: host a's agent compresses with its
    libzstd on its thread pool, b's agent decodes with its own; a checkpoint after about
    every frame is acknowledged while frames are in flight on the pool, the copy is exact
    and the preflight line names ``zstd-lib`` on both sides.  Before: ``zstd-bin``."""
    size = 48 * MiB
    a, b, rb, want = _direct_pair(ssh_hosts, tmp_path, size, _disk)
    ckpts: list[int] = []
    try:
        check = a.compression_check(b)
        assert check is not None and check.ok, check
        assert "direct: the source agent compresses with zstd-lib, b's agent decodes with " \
               "zstd-lib" in check.detail, check.detail
        b.create_disk("d", size)
        # checkpoints count wire bytes: 256 KiB is about every compressed 1 MiB frame
        stats = copy_extents(a, "d", b, "d", [Extent(0, size)], checkpoint_bytes=256 * 1024,
                             on_checkpoint=ckpts.append)
        assert a.last_summary.get("acked_offset") == size  # it went through push
    finally:
        a.close()
        b.close()
    assert (rb / "d").read_bytes() == want
    assert stats.codec == "zstd-lib" and stats.frames_packed >= 8, stats
    assert len(ckpts) >= 8 and ckpts[-1] == size, ckpts
    # (on this unshaped link the agent may measure frames as is faster for a while)
    assert stats.bytes_wire < stats.bytes_sent, stats


_open = open_agent_ds  # tests/ssh/sshdp.py


def _text_disk(path: Path, size: int) -> bytes:
    """Hex "files" of 512 KiB, each stored twice 1.5 MiB apart, no zero runs: one run of
    data that the packer may join (tests/unit/test_packer_span.py)."""
    files = [os.urandom(256 * 1024).hex().encode() for _ in range(size // MiB)]
    data = b"".join(files[i] + files[i - 2 if i >= 2 else i] for i in range(len(files)))
    path.write_bytes(data)
    return data


def joined_copy(a: Any, b: Any, rb: Path, size: int,
                want: bytes) -> tuple[list[int], Any, dict[str, Any]]:
    """Copy disk ``d`` a -> b behind a cap (a direct push's peer kept by the probe, as the
    preflight does): the copy exact, frames joined, checkpoints in order; the checkpoints,
    the copy's stats and the source agent's summary."""
    ckpts: list[int] = []
    try:
        # the preflight's probe keeps b's agent up for the push (as `vmigrate sync` does):
        # else the first 48 MiB wait in memory for it and no frame meets the link here
        if a.settings.mode == "direct":
            ok, why = a.probe_direct(b)
            assert ok, why
        b.create_disk("d", size)
        stats = copy_extents(a, "d", b, "d", [Extent(0, size)], checkpoint_bytes=2 * MiB,
                             on_checkpoint=ckpts.append)
        summary = a.last_summary
    finally:
        a.close()
        b.close()
    assert (rb / "d").read_bytes() == want
    # behind the cap the packer joined chunks into long-window frames
    assert summary.get("span_max", 0) >= 4 * MiB, repr(summary)
    assert stats.codec == "zstd-lib" and stats.bytes_wire < 0.5 * size, stats
    # checkpoints say offsets the destination holds, in order, up to the end
    assert ckpts == sorted(ckpts) and ckpts[-1] == size and all(0 < c <= size for c in ckpts)
    return ckpts, stats, summary


# (A relay copy behind the same cap on loopback joined frames in some runs only: the pipes,
# sshd's and loopback's buffers and this machine's read-ahead take ~20 MB at once, and on
# 2 cores the source agent often waits for its codec; the relay forwards frames whatever
# they cover (test_relay_decode), and bench_seed measures relay mode over shaped links.)


@pytest.mark.netns
def test_direct_push_of_joined_frames_says_the_offsets_reached(
        ssh_hosts: SshHosts, tmp_path: Path) -> None:
    """Direct mode behind a 12 MB/s cap: the pushing agent's frames cover 4-16 MiB each;
    the offset it reports at each checkpoint is the end of the data sent, not of the
    frame's first chunk, so a resume starts after what the peer holds.  Before: no frame
    covered more than one chunk (``reached`` read from a map of chunk ends)."""
    size = 80 * MiB
    a, b, rb, want = _direct_pair(ssh_hosts, tmp_path, size, _text_disk, bwlimit=12_000_000)
    ckpts, _stats, _summary = joined_copy(a, b, rb, size, want)
    assert len(ckpts) >= 3, ckpts
