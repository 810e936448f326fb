"""The packer's adaptive on/off (agent/packing.py) with the host's zstd and a link that is
slower than the codec, as a 1 Gbit/s link is for zstd -1 on a host with a few cores.

Real disk content mixes compressible text with files that are compressed already
(/usr/share: 33 of 922 chunks of 1 MiB shrank by less than 10%, bench/README.md): one such
chunk must not stop compression for the 16 after it, and while the link holds the stream
back (the codec keeps ahead) sending as is could only be slower, so no window is probed as
is.  The link here is a sleep per wire byte (no buffers to fill): what only a real link
and ssh would show is how far their buffers fool a probe (WARM), measured in bench_seed.
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

    def send(ftype: int, payload: bytes, arg: int, fl: int) -> None:
        time.sleep((len(payload) + proto.HEADER_SIZE) / LINK)  # the link
        flags.append(fl)

    p = packing.Packer("zstd", 1, send, workers=2)
    for i, c in enumerate(chunks):
        p.emit(proto.DATA, c, i * MiB)
    p.finish()
    return p.stats, flags


def test_one_incompressible_chunk_does_not_stop_compression() -> None:
    """Text with a random chunk every eighth: every text chunk goes compressed.  Before:
    each random chunk paused compression for the next 16 (about half the disk as is)."""
    chunks = [os.urandom(MiB) if i % 8 == 7 else _text(i) for i in range(48)]
    stats, flags = _run(chunks)
    text_flags = [f for i, f in enumerate(flags) if i % 8 != 7]
    assert all(f == proto.FLAG_ZSTD for f in text_flags), (stats, flags)
    assert stats["no_gain"] == 6 and stats["raw"] == 6, stats


def test_link_bound_stream_is_not_probed_as_is() -> None:
    """Text over a link slower than the codec: no window is sent as is to measure it.
    Before: every ninth window of 16 chunks went as is (a probe), about 3x the link time
    for those chunks."""
    stats, flags = _run([_text(i) for i in range(40)])
    assert stats["raw"] == 0 and stats["off_for_rate"] == 0, stats
    assert all(f == proto.FLAG_ZSTD for f in flags)


def test_incompressible_data_pauses_compression() -> None:
    """Random data: after MISSES chunks in a row that did not shrink, PAUSE chunks go as
    they are without trying (the codec's time is not spent for nothing)."""
    stats, _flags = _run([os.urandom(MiB) for _ in range(40)])
    assert stats["packed"] == 0 and stats["raw"] == 40, stats
    assert stats["no_gain"] <= 40 - packing.PAUSE, stats
