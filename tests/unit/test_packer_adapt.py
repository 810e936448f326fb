"""The packer's adaptive on/off (agent/packing.py) with the host's zstd and a link that is
slower than the codec, as a 1 Gbit/s link is for zstd -1 on a host with a few cores, and a
codec slower than the link.

Real disk content mixes compressible text with files that are compressed already
(/usr/share: 33 of 922 chunks of 1 MiB shrank by less than 10%, bench/README.md): one such
chunk must not stop compression for the 16 after it; while the link holds the stream back
(the codec keeps ahead) every chunk goes compressed; a codec that cannot keep up has the
chunks it is behind on sent as they are, in order.  The link here is a sleep per wire
byte (no buffers): how a real link's buffers and a host's other work change the mix is
measured in bench_seed, not here.
"""

from __future__ import annotations

import os
import time

import pytest

from vmigrate_lib.dataplane.agent import packing
from vmigrate_lib.dataplane.agent import protocol as proto

MiB = 1 << 20
LINK = 10e6  #: bytes per second of the simulated link


def _text(i: int) -> bytes:
    """Log lines and hex: about a third after zstd -1 (as the share image's chunks)."""
    lines = b"".join(b"%08d a line of a text file %d\n" % (i * 20000 + j, j % 11)
                     for j in range(20000))
    return (lines[: MiB // 2] + os.urandom(MiB // 4).hex().encode())[:MiB]


def _run(chunks: list[bytes]) -> tuple[dict[str, int], list[int]]:
    if proto.CODEC_IMPL.get("zstd") not in ("module", "lib"):
        pytest.skip("no zstd module nor libzstd here")
    flags: list[int] = []

    def send(ftype: int, payload: bytes, arg: int, fl: int, size: int) -> None:
        time.sleep((len(payload) + proto.HEADER_SIZE) / LINK)  # the link
        flags.append(fl)

    p = packing.Packer("zstd", 1, send, workers=2)
    for i, c in enumerate(chunks):  # apart: a frame per chunk (test_packer_span joins them)
        p.emit(proto.DATA, c, 2 * i * MiB)
    p.finish()
    return p.stats, flags


def test_one_incompressible_chunk_does_not_stop_compression() -> None:
    """Text with a random chunk every eighth: every text chunk goes compressed.  Before:
    each random chunk paused compression for the next 16 (about half the disk as is)."""
    chunks = [os.urandom(MiB) if i % 8 == 7 else _text(i) for i in range(48)]
    stats, flags = _run(chunks)
    text_raw = [i for i, f in enumerate(flags) if i % 8 != 7 and f != proto.FLAG_ZSTD]
    # a text chunk goes as is only while the codec is behind (a loaded machine), never
    # paused by the random chunk before it
    assert len(text_raw) == stats["off_for_rate"], (stats, flags)
    assert stats["no_gain"] == 6 and stats["raw"] == 6 + len(text_raw), stats


def test_link_bound_stream_is_not_probed_as_is() -> None:
    """Text over a link slower than the codec: nothing goes as is.  Before: a window of 16
    chunks went as is to measure that mode (a probe), about 3x the link time for those
    chunks."""
    stats, _flags = _run([_text(i) for i in range(40)])
    # as is only where the codec fell behind (a loaded machine): none probed
    assert stats["raw"] == stats["off_for_rate"] <= 4, stats


def test_incompressible_data_pauses_compression() -> None:
    """Random data: after MISSES chunks in a row that did not shrink, PAUSE chunks go as
    they are without trying, then 2 x PAUSE, ... (the codec's time is not spent for
    nothing): of 65 chunks, 8 + 16 + 32 at most are not tried."""
    stats, _flags = _run([os.urandom(MiB) for _ in range(65)])
    assert stats["packed"] == 0 and stats["raw"] == 65, stats
    # (frames in flight on the pool are tried before the misses are known)
    assert stats["no_gain"] <= 65 - 3 * packing.PAUSE, stats


def test_slow_codec_sends_what_it_is_behind_on_as_is() -> None:
    """zlib -9 (tens of MB/s) and a link that takes whatever comes: the chunks that arrive
    while the pool is BEHIND go as they are, the others compressed, all in order.  Before
    (wall-clock windows): a probe decided for a whole window at a time."""
    sent: list[tuple[int, bytes, int]] = []

    def send(ftype: int, payload: bytes, arg: int, fl: int, size: int) -> None:
        sent.append((arg, payload, fl))

    chunks = [_text(i) for i in range(24)]
    p = packing.Packer("zlib", 9, send, workers=2)
    for i, c in enumerate(chunks):
        p.emit(proto.DATA, c, i * MiB)
    p.finish()
    assert [a for a, _p, _f in sent] == [i * MiB for i in range(24)]
    assert [proto.decode_payload(f, b) for _a, b, f in sent] == chunks
    assert p.stats["off_for_rate"] > 0 and p.stats["packed"] > 0, p.stats


def test_zstd_level_rises_while_the_link_is_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text over a 10 MB/s link: the sender spends its time blocked sending, so zstd's
    level rises above the one asked (smaller frames for CPU the link leaves idle); every
    frame still decodes.  Before: level 1 throughout (``level_max`` 1)."""
    if proto.CODEC_IMPL.get("zstd") not in ("module", "lib"):
        pytest.skip("no zstd module nor libzstd here")
    # a host without /proc/stat (ESXi): the idle-core gate does not apply
    # (test_packer_span.py runs the gate)
    monkeypatch.setattr(packing, "cpu_sample", lambda path="/proc/stat": None)
    sent: list[tuple[bytes, int]] = []

    def send(ftype: int, payload: bytes, arg: int, fl: int, size: int) -> None:
        time.sleep((len(payload) + proto.HEADER_SIZE) / LINK)
        sent.append((payload, fl))

    # the span grows first (two windows: 4 MiB, 16 MiB), then the level; the chunks lie
    # apart, so none is joined and each frame is one chunk
    chunks = [_text(i) for i in range(4 * packing.LEVEL_WINDOW + 4)]
    p = packing.Packer("zstd", 1, send, workers=2)
    for i, c in enumerate(chunks):
        p.emit(proto.DATA, c, 2 * i * MiB)
    p.finish()
    assert p.stats["level_max"] >= 2, p.stats
    assert [proto.decode_payload(f, b) for b, f in sent] == chunks
