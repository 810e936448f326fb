"""The destination's certify digests, read back from what its write stream wrote (issue 13
item 2): taken during the copy, from the file at the intended offsets, so a write that
lands at a wrong offset is still caught.  The agent runs in this process on real files;
what only a real ESXi host would show: VMFS read-back speed (page cache or not).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from vmigrate_lib.dataplane.agent import ops_stream
from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.agent.server import Agent

MiB = 1 << 20


def _frame(ftype: int, payload: bytes = b"", arg: int = 0, flags: int = 0) -> bytes:
    return proto.pack_frame(ftype, payload, arg, flags) + payload


def _write(tmp_path: Path, frames: bytes, digest: dict[str, object]) -> list[tuple[int, int, bytes]]:
    """Run op_write on ``frames``; the DIGESTS entries it sent before END."""
    out = io.BytesIO()
    agent = Agent(str(tmp_path), io.BytesIO(frames + _frame(proto.END)), out)
    agent.op_write({"op": "write", "path": "d", "create": True, "digest": digest})
    r = io.BytesIO(out.getvalue())
    got: list[tuple[int, int, bytes]] = []
    step = proto.DIGEST_ENTRY.size + 20  # sha1
    while True:
        ftype, _f, _a, payload, _raw = proto.read_frame(r)
        if ftype == proto.DIGESTS:
            for i in range(0, len(payload), step):
                off, ln = proto.DIGEST_ENTRY.unpack_from(payload, i)
                got.append((off, ln, payload[i + proto.DIGEST_ENTRY.size:i + step]))
        elif ftype == proto.END:
            assert json.loads(payload)["acked"] > 0
            return got


def _sha1(b: bytes) -> bytes:
    return hashlib.sha1(b).digest()


def test_whole_disk_digests_read_back_during_the_write(tmp_path: Path) -> None:
    """A seed's write stream (DATA, a HOLE, a gap never written) gives the digests of the
    whole [0, size) grid, block for block those of a hash pass over the file after it.
    Before: the destination was read whole by certify after the copy."""
    size = 6 * MiB
    a, b = os.urandom(MiB + 5000), os.urandom(700_000)
    frames = (_frame(proto.DATA, a, 0) + _frame(proto.HOLE, proto.LENGTH.pack(MiB), MiB + 5000)
              + _frame(proto.DATA, b, 4 * MiB))  # [2 MiB + 5000, 4 MiB): a gap
    got = _write(tmp_path, frames, {"algorithm": "sha1", "block": MiB, "size": size})
    data = (tmp_path / "d").read_bytes().ljust(size, b"\0")
    want = [(o, MiB, _sha1(data[o:o + MiB])) for o in range(0, size, MiB)]
    assert got == want


def test_a_write_at_a_wrong_offset_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The digests come from the file, not the wire: a frame written 4 KiB off its offset
    gives a digest that differs from the data's (digesting the received payload would
    have matched and hidden it)."""
    from vmigrate_lib.dataplane.agent.sparse import pwrite_all as real

    def off_by_4k(fd: int, data: bytes, offset: int) -> None:
        real(fd, data, offset + (4096 if offset == MiB else 0))

    monkeypatch.setattr(ops_stream, "pwrite_all", off_by_4k)
    a, b = os.urandom(MiB), os.urandom(MiB)
    got = _write(tmp_path, _frame(proto.DATA, a, 0) + _frame(proto.DATA, b, MiB),
                 {"algorithm": "sha1", "block": MiB})
    assert [(o, n) for o, n, _d in got] == [(0, MiB), (MiB, MiB)]
    assert got[0][2] == _sha1(a)
    assert got[1][2] != _sha1(b)  # certify will report block 1 as different


def test_read_frames_end_on_the_chunk_grid(tmp_path: Path) -> None:
    """A read from an unaligned offset (a seed's allocated area starts anywhere on a 4 KiB
    boundary) sends frames that end on the chunk grid, so that each certify block the
    stream digests lies in one frame (before: every 1 MiB block straddled two frames and
    was joined, a copy of everything the seed sent)."""
    (tmp_path / "d").write_bytes(os.urandom(4 * MiB))
    out = io.BytesIO()
    agent = Agent(str(tmp_path), io.BytesIO(), out)
    agent.op_read({"op": "read", "path": "d", "extents": [[5000, 3 * MiB]], "chunk": MiB})
    r = io.BytesIO(out.getvalue())
    offsets = []
    while True:
        ftype, _f, arg, _payload, _raw = proto.read_frame(r)
        if ftype == proto.END:
            break
        offsets.append(arg)
    assert offsets == [5000, MiB, 2 * MiB, 3 * MiB]
