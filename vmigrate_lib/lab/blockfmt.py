"""The self-describing blocks a lab guest writes.

Every block starts with a header (magic, disk key, block size, block index,
sequence number, CRC-32 over the whole block), so any copy of a disk can be
checked on its own: a torn or misplaced block is visible, and together with
the guest's ack map a copy can be proven to hold the guest's last state.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import NamedTuple

from ..errors import ParameterError

MAGIC = b"VMLB"
#: magic, disk key, block size, block index, seq, crc32 (crc computed with this field 0)
HEADER = struct.Struct("<4sIIQQI")
GRAIN = 64 * 1024
SECTOR = 512


class BlockHeader(NamedTuple):
    disk_key: int
    block_size: int
    block: int
    seq: int
    crc: int


def validate_block_size(block_size: int) -> int:
    """Blocks must be whole sectors and tile a 64 KiB grain (so CoW never splits one)."""
    if block_size < SECTOR or block_size % SECTOR or GRAIN % block_size:
        raise ParameterError(
            f"block size {block_size} must be a multiple of 512 that divides 65536",
            block_size=block_size,
        )
    return block_size


def payload(disk_key: int, seq: int, length: int) -> bytes:
    """Pseudo-random payload derived from (disk, seq): incompressible, reproducible."""
    return hashlib.shake_128(struct.pack("<IQ", disk_key, seq)).digest(length)


def make_block(disk_key: int, block_size: int, index: int, seq: int) -> bytes:
    body = payload(disk_key, seq, block_size - HEADER.size)
    head0 = HEADER.pack(MAGIC, disk_key, block_size, index, seq, 0)
    crc = zlib.crc32(body, zlib.crc32(head0))
    return HEADER.pack(MAGIC, disk_key, block_size, index, seq, crc) + body


def parse_header(buf: bytes | memoryview, pos: int = 0) -> BlockHeader | None:
    """The header at ``pos`` if it looks like one of ours (magic and sane size)."""
    if len(buf) - pos < HEADER.size or bytes(buf[pos : pos + 4]) != MAGIC:
        return None
    _, key, bs, index, seq, crc = HEADER.unpack_from(buf, pos)
    if bs < SECTOR or bs % SECTOR or GRAIN % bs:
        return None
    return BlockHeader(key, bs, index, seq, crc)


def block_valid(buf: bytes | memoryview, pos: int, head: BlockHeader) -> bool:
    """Whether the block at ``pos`` is whole (its CRC matches)."""
    end = pos + head.block_size
    if end > len(buf):
        return False
    head0 = HEADER.pack(MAGIC, head.disk_key, head.block_size, head.block, head.seq, 0)
    crc = zlib.crc32(buf[pos + HEADER.size : end], zlib.crc32(head0))
    return crc == head.crc
