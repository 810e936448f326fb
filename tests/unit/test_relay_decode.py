"""A relay forwards compressed frames without decoding them.

In relay mode this machine carries the source agent's compressed DATA frames to a
destination that decodes them itself; it used to decompress every frame as it arrived
(only to learn its length: the offset the copy reached, its checkpoints, its counts), about
1 CPU second per GiB of zstd (bench/README.md) on the machine that also runs the relay's
two SSH connections.  Now a zstd frame's length is read from its header (RFC 8878 section
3.1.1, Frame_Content_Size, which ``ZSTD_compressCCtx`` and python-zstandard write) and the
data is decoded only when used (a destination that does not speak the codec).

Here: the header reader against frames of this machine's codecs and of the zstd tool (no
size from a pipe: None, so the relay decodes), and a relay between two real agents
(the source compressing with zstd) counted for decodes in this process (the protocol
module's decoder wrapped by the test), the copy compared byte for byte.  What only real
hosts would show: the CPU this saves on a relay host (bench/seed_timeline.py, relay).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.agent.zstdframe import content_size
from vmigrate_lib.dataplane.agentchannel import AgentChannel
from vmigrate_lib.dataplane.client import AgentDatastore
from vmigrate_lib.dataplane.datastore import ExtentWriter
from vmigrate_lib.dataplane.ssh.writer import ResilientWriter
from vmigrate_lib.dataplane.transport import LocalTransport
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.extents import Extent

MiB = 1 << 20

needs_zstd = pytest.mark.skipif("zstd" not in proto.CODECS, reason="no zstd codec here")


def _text(n: int) -> bytes:
    """Compressible bytes: hex of random data."""
    return os.urandom(n // 2).hex().encode()[:n]


@needs_zstd
@pytest.mark.parametrize("data", [b"", b"x", bytes(MiB), _text(MiB), os.urandom(300_000)],
                         ids=["empty", "one", "zeros", "text", "random"])
def test_zstd_frame_says_its_length(data: bytes) -> None:
    """A frame of this machine's zstd codec (module or libzstd) announces its length."""
    _flag, compress, decompress = proto.CODECS["zstd"]
    for level in (1, 3):
        frame = compress(data, level)
        assert content_size(frame) == len(data) == len(decompress(frame))
        assert proto.packed_length(proto.FLAG_ZSTD, frame) == len(data)


@needs_zstd
def test_frames_that_do_not_say_are_decoded() -> None:
    """No answer (None: the relay decodes) for the zstd tool's frame from a pipe (no content
    size), two frames in one payload, a truncated frame, zlib and lz4 frames."""
    data = _text(256 * 1024)
    _flag, compress, _d = proto.CODECS["zstd"]
    frame = compress(data, 1)
    assert content_size(frame + frame) is None
    assert content_size(frame[:-3]) is None
    assert content_size(b"not a zstd frame at all") is None
    assert proto.packed_length(proto.FLAG_ZLIB, proto.CODECS["zlib"][1](data, 1)) is None
    if shutil.which("zstd"):
        tool = subprocess.run(["zstd", "-1", "-q", "-c"], input=data, capture_output=True,
                              check=True).stdout
        assert content_size(tool) is None


class ResilientDatastore(AgentDatastore):
    """An agent datastore whose writer forwards compressed frames, as over SSH."""

    def open_writer(self, path: str) -> ExtentWriter:
        return ResilientWriter(self.channel, path)


@needs_zstd
def test_relay_forwards_zstd_frames_without_decoding(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every compressed frame was decoded in this process (decodes == frames)."""
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    size = 12 * MiB
    data = _text(4 * MiB) + bytes(2 * MiB) + os.urandom(2 * MiB) + _text(4 * MiB)
    (ra / "d").write_bytes(data)
    (rb / "d").write_bytes(b"")
    decodes: list[int] = []
    real = proto.decode_payload

    def counted(flags: int, payload: bytes) -> bytes:
        if flags & proto.CODEC_FLAGS:
            decodes.append(len(payload))
        return real(flags, payload)

    monkeypatch.setattr(proto, "decode_payload", counted)
    src = AgentDatastore("a", LocalTransport(str(ra)),
                         AgentChannel("a", LocalTransport(str(ra)), compress="zstd"))
    dst = ResilientDatastore("b", LocalTransport(str(rb)),
                             AgentChannel("b", LocalTransport(str(rb)), compress="zstd"))
    recorded: list[int] = []
    try:
        stats = copy_extents(src, "d", dst, "d", [Extent(0, size)], checkpoint_bytes=4 * MiB,
                             on_checkpoint=recorded.append)
    finally:
        src.close()
        dst.close()
    assert (rb / "d").read_bytes() == data
    assert stats.codec and stats.frames_packed >= 8, stats
    assert decodes == [], f"{len(decodes)} of {stats.frames_packed} frames decoded here"
    assert stats.bytes_sent + stats.bytes_zero == size
    assert recorded[-1] == size and recorded == sorted(recorded)
