"""A DATA frame's checksum covers its header, not its payload (issue 13 item 1's seed rate).

zlib's crc32 ran slower than sha1 on this machine (bench/README.md), and it ran over every
payload two to four times (sender, relay in and out, receiver).  A disk's bytes are checked
otherwise: SSH's MAC on the wire, a compressed frame's own checksum, and certify end to end
(tests/unit/test_readback.py: a misplaced write is caught).  Control frames keep the full
checksum.
"""

from __future__ import annotations

import io
import os

import pytest

from vmigrate_lib.dataplane.agent import protocol as proto


def test_data_frames_check_their_header_only() -> None:
    payload = os.urandom(1 << 20)
    frame = bytearray(proto.pack_frame(proto.DATA, payload, 4096, proto.FLAG_ZSTD) + payload)
    frame[-2] ^= 0x01  # a payload bit: left to SSH's MAC, the codec and certify
    ftype, flags, arg, got, _raw = proto.read_frame(io.BytesIO(bytes(frame)))
    assert (ftype, flags, arg, len(got)) == (proto.DATA, proto.FLAG_ZSTD, 4096, 1 << 20)
    frame[12] ^= 0x01  # a header bit (the offset): caught
    with pytest.raises(proto.ProtocolError, match="checksum mismatch"):
        proto.read_frame(io.BytesIO(bytes(frame)))


def test_control_frames_check_their_payload() -> None:
    req = b'{"op": "write", "path": "d"}'
    frame = bytearray(proto.pack_frame(proto.REQ, req) + req)
    frame[-3] ^= 0x01
    with pytest.raises(proto.ProtocolError, match="checksum mismatch"):
        proto.read_frame(io.BytesIO(bytes(frame)))
