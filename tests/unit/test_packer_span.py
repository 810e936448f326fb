"""The packer joins contiguous chunks into long-window frames where the link is the limit
(agent/packing.py, issue 13 item 1: seed at the link's speed on a slow link).

The fact imitated: a disk holds the same bytes far apart (copies of a file, a package
and its unpacked tree), which a compressor finds only with a window that reaches them.
Measured on the share image (an ext4 of /usr/share built by bench_seed):
``zstd -1`` on the whole stream 101 MiB, with ``--long=27`` 76 MiB; 1 MiB frames each
compressed alone 104 MiB, 16 MiB frames with long-distance matching 86 MiB
(bench/README.md).  zstd's own manual documents ``--long``: "increases the window size
... improving compression ratio for files with long matches" (zstd(1)); a frame so made is
a standard zstd frame (RFC 8878), decoded by any decoder whose window limit (2^27 by
default) covers it.

The link is a sleep per wire byte (no buffers).  What only a real link shows (its
buffers, the host's other work) is measured in bench_seed, not asserted here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vmigrate_lib.dataplane.agent import packing
from vmigrate_lib.dataplane.agent import protocol as proto

MiB = 1 << 20
LINK = 20e6  #: bytes per second of the simulated link: slower than zstd -1 on one core


def _files(n_chunks: int) -> bytes:
    """A disk of 512 KiB "files" (hex text: about half after zstd -1), each stored twice,
    1.5 MiB apart: further than a chunk's own window reaches."""
    out = bytearray()
    files = [os.urandom(256 * 1024).hex().encode() for _ in range(n_chunks)]
    for i in range(n_chunks):
        out += files[i]
        out += files[i - 2] if i >= 2 else files[i][::-1]
    assert len(out) == n_chunks * MiB
    return bytes(out)


def _fake_stat(idle: float) -> Callable[..., tuple[float, float, int]]:
    """A 2-CPU host's /proc/stat sample whose jiffies grow by 100 a call, ``idle`` of them
    idle (a fraction): the load of this machine does not decide the test."""
    calls = [0]

    def sample(path: str = "/proc/stat") -> tuple[float, float, int]:
        calls[0] += 1
        return calls[0] * 100 * idle, calls[0] * 100.0, 2

    return sample


_idle_host = _fake_stat(0.9)  #: 1.8 of 2 cores idle


def _need_long() -> None:
    if "zstd" not in proto.LONG_WINDOW:
        pytest.skip("no zstd module nor libzstd >= 1.4 here (scripts/setup.sh installs one)")


Sent = list[tuple[int, int, bytes, int, int]]


def _pack(chunks: list[tuple[int, int, bytes]], link: float | None,
          ldm: bool | None = None) -> tuple[packing.Packer, Sent]:
    """Emit (type, offset, payload) in order through a zstd packer (long-distance matching
    set to ``ldm`` first, as after earlier windows); each frame sent sleeps its wire bytes
    at ``link`` bytes/s (None: no wait)."""
    sent: Sent = []

    def send(ftype: int, payload: bytes, arg: int, fl: int, size: int) -> None:
        if link:
            time.sleep((len(payload) + proto.HEADER_SIZE) / link)
        sent.append((ftype, arg, payload, fl, size))

    p = packing.Packer("zstd", 1, send, workers=2)
    if ldm is not None:
        p.ldm = ldm
    for ftype, off, payload in chunks:
        p.emit(ftype, payload, off)
    p.finish()
    return p, sent


def test_link_bound_stream_goes_in_long_window_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a link slower than the codec, a packer whose long-distance matching is off
    (as after the codec fell behind) turns it back on, in 16 MiB frames smaller than the
    same chunks compressed one by one; and every frame says the data it covers: the frames
    tile the disk in order and decode to it.  Before long windows: a 1 MiB frame per chunk
    (the repeats 1.5 MiB apart never found).  What LDM itself finds that a 16 MiB window
    without it does not, only real content shows: not these repeats (a 2^24 window at
    level 1 finds them too), the share image's (bench/README.md)."""
    _need_long()
    monkeypatch.setattr(packing, "cpu_sample", _idle_host)
    disk = _files(96)
    chunks = [(proto.DATA, i * MiB, disk[i * MiB:(i + 1) * MiB]) for i in range(96)]
    p, sent = _pack(chunks, LINK, ldm=False)  # as after the codec fell behind
    assert p.stats["span_max"] == packing.SPAN_MAX, p.stats
    assert p.ldm and 0 < p.stats["ldm_off"] < 96, p.stats
    pos = 0
    for ftype, arg, payload, fl, size in sent:
        assert ftype == proto.DATA and arg == pos, (arg, pos)
        data = proto.decode_payload(fl, payload)
        assert len(data) == size and data == disk[pos:pos + size]
        pos += size
    assert pos == len(disk)
    assert p.stats["packed"] + p.stats["raw"] == 96, p.stats
    compress = proto.CODECS["zstd"][1]
    long_frames = [(arg, len(payload), size) for _t, arg, payload, _f, size in sent
                   if size == packing.SPAN_MAX]
    assert long_frames, [s[4] for s in sent]
    for arg, wire, size in long_frames:  # the same chunks one by one: repeats not seen
        alone = sum(len(compress(disk[o:o + MiB], 1)) for o in range(arg, arg + size, MiB))
        assert wire < 0.7 * alone, (arg, wire, alone)


def test_frames_never_join_across_a_hole_or_a_gap() -> None:
    """A HOLE, or a DATA chunk that does not follow the one before, closes the joined
    frame: each frame covers one contiguous run of data, and the frames tile the runs in
    stream order.  A frame joined across a gap would put the next chunk's bytes at the
    wrong offsets."""
    _need_long()
    disk = _files(24)
    chunks: list[tuple[int, int, bytes]] = []
    runs = []
    for r in range(4):  # 6 MiB of data, a 1 MiB HOLE, then a 1 MiB gap before the next
        base = r * 8 * MiB
        runs.append((base, base + 6 * MiB))
        for k in range(6):
            i = r * 6 + k
            chunks.append((proto.DATA, base + k * MiB, disk[i * MiB:(i + 1) * MiB]))
        chunks.append((proto.HOLE, base + 6 * MiB, proto.LENGTH.pack(MiB)))
    got: Sent = []
    p = packing.Packer("zstd", 1, lambda ftype, payload, arg, fl, size: got.append(
        (ftype, arg, payload, fl, size)), workers=2)
    for ftype, off, payload in chunks:
        p.emit(ftype, payload, off)
    p.finish()
    assert [(t, a) for t, a, *_rest in got][:2] == [(proto.DATA, 0), (proto.HOLE, 6 * MiB)]
    assert got[0][4] == 6 * MiB  # the first run in one frame (24 chunks: no shrink yet)
    pos = {r: s for r, (s, _e) in enumerate(runs)}
    for ftype, arg, payload, fl, size in got:
        r = arg // (8 * MiB)
        if ftype == proto.HOLE:
            assert arg == runs[r][1] and pos[r] == runs[r][1] and size == MiB
            continue
        assert arg == pos[r] and arg + size <= runs[r][1], (arg, size, runs[r])
        i = r * 6 + (arg - runs[r][0]) // MiB
        assert proto.decode_payload(fl, payload) == disk[i * MiB:i * MiB + size]
        pos[r] = arg + size
    assert all(pos[r] == runs[r][1] for r in pos), pos


def test_matching_goes_off_when_the_codec_is_behind() -> None:
    """No link to wait for (the sender never blocks): the sender waits for the codec, so
    long-distance matching goes off, and the frames stay joined 16 MiB long.  Measured on
    the share image (941 MiB, level 1, one core): 16 MiB frames with LDM 256 MiB out for
    3.6-4.4 CPU s, without 276 MiB for 2.3 s, 1 MiB frames 295 MiB for 2.6 s
    (bench/README.md).  Before: the span came down (16 -> 4 MiB -> a frame per chunk) and
    LDM stayed on, the dearest of the three."""
    _need_long()
    n = 4 * packing.LEVEL_WINDOW
    disk = _files(n)
    sent: Sent = []
    p = packing.Packer("zstd", 1, lambda t, b, a, fl, size: sent.append((t, a, b, fl, size)),
                       workers=2)
    ldm = []
    for i in range(n):
        p.emit(proto.DATA, disk[i * MiB:(i + 1) * MiB], i * MiB)
        ldm.append(p.ldm)
    p.finish()
    assert ldm[0] and not ldm[-1], ldm[::8]
    assert p.span == packing.SPAN_MAX and p.stats["ldm_off"] > 0, p.stats
    late = [(fl, size) for _t, arg, _b, fl, size in sent if arg >= n // 2 * MiB]
    assert any(fl and size == packing.SPAN_MAX for fl, size in late), late
    assert b"".join(proto.decode_payload(fl, b) for _t, _a, b, fl, _s in sent) == disk


def test_a_pause_counts_chunks_not_joined_frames() -> None:
    """Incompressible data in joined frames pauses compression for PAUSE *chunks*: the
    text after the random run goes compressed.  Before (bench_seed, relay over 100 Mbit/s:
    157 of 241 chunks sent as they are, 183 MiB on the wire instead of 91): a pause
    counted queued frames, so 8 joined frames of 4 MiB, then 16, went as they were."""
    _need_long()
    text = _files(16)
    chunks = [os.urandom(MiB) for _ in range(28)] + [text[i * MiB:(i + 1) * MiB]
                                                      for i in range(16)]
    p, sent = _pack([(proto.DATA, i * MiB, c) for i, c in enumerate(chunks)], LINK)
    assert p.stats["no_gain"] >= 3, p.stats
    late = [(arg, fl) for _t, arg, _p, fl, _s in sent if arg >= 28 * MiB]
    assert late and all(fl == proto.FLAG_ZSTD for _a, fl in late), (late, p.stats)


def test_matching_and_level_stay_when_no_core_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same link-bound stream on a host whose cores are busy (a receiver starved of
    CPU on the same cores also holds the sender back): matching off stays off and the
    level as asked, no CPU is spent on them.  Before: on the bench's 2-core machine the
    level rose to 3 at 1 Gbit/s (1.0-1.3 CPU s more per share seed, bench/README.md)."""
    _need_long()
    monkeypatch.setattr(packing, "cpu_sample", _fake_stat(0.2))  # 0.4 of 2 cores idle
    disk = _files(96)
    p, sent = _pack([(proto.DATA, i * MiB, disk[i * MiB:(i + 1) * MiB]) for i in range(96)],
                    LINK, ldm=False)
    assert not p.ldm and p.stats["ldm_off"] == 96 and p.stats["level_max"] == 1, p.stats
    assert b"".join(proto.decode_payload(fl, b) for _t, _a, b, fl, _s in sent) == disk


def test_idle_cores_from_proc_stat(tmp_path: Path) -> None:
    """/proc/stat as proc(5) documents it: the ``cpu`` line's fields are user, nice,
    system, idle, iowait, irq, softirq, steal (USER_HZ), then a ``cpuN`` line per CPU;
    idle cores = (idle + iowait) growth / all growth x CPUs.  A host without the file
    (ESXi) gives None: the gate does not apply there."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\n"
                    "cpu1 50 0 50 350 50 0 0 0 0 0\nintr 1 2 3\n")
    before = packing.cpu_sample(str(stat))
    stat.write_text("cpu  200 0 200 900 100 0 0 0 0 0\ncpu0 100 0 100 450 50 0 0 0 0 0\n"
                    "cpu1 100 0 100 450 50 0 0 0 0 0\nintr 1 2 3\n")
    after = packing.cpu_sample(str(stat))
    assert before == (800.0, 1000.0, 2) and after is not None
    assert packing.idle_cores(before, after) == 200 / 400 * 2
    assert packing.cpu_sample(str(tmp_path / "absent")) is None
    assert packing.idle_cores(None, after) is None


def test_incompressible_run_is_tried_a_chunk_at_a_time() -> None:
    """Random data in a long-window stream over a fast link: after the first joined frame
    that does not shrink, the packer tries single chunks (pausing between tries, longer
    each time), so a third at most of 256 random chunks costs codec time; the text after it
    (past the last pause) goes compressed and joined again.  Before (bench_seed, random at 1 Gbit/s): every try
    was a 16 MiB frame, and 512 of 1024 chunks were compressed for nothing (83 MB/s
    against 101 with compression off)."""
    _need_long()
    text = _files(128)
    chunks = [os.urandom(MiB) for _ in range(256)] + [text[i * MiB:(i + 1) * MiB]
                                                       for i in range(128)]
    p, sent = _pack([(proto.DATA, i * MiB, c) for i, c in enumerate(chunks)], 200e6)
    # of 256 random chunks: the three joined frames in flight when the first one's
    # answer comes (48), then a few single chunks between pauses
    assert p.stats["no_gain"] <= 96, p.stats
    # the text: past the last pause (at most PAUSE_MAX chunks), compressed and joined
    late = [(size, fl) for _t, arg, _p, fl, size in sent if arg >= 352 * MiB]
    assert all(fl == proto.FLAG_ZSTD for _s, fl in late), (late, p.stats)
    assert max(size for size, _f in late) > MiB, late  # joined again
    assert b"".join(proto.decode_payload(fl, b) for _t, _a, b, fl, _s in sent) == b"".join(chunks)
