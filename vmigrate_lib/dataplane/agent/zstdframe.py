"""The decompressed size a zstd frame announces, read from its header without decoding it.

A relay forwards the source's compressed DATA frames untouched to a destination that
decodes them; it needs each frame's decompressed length (the offset the copy reached, its
checkpoints, its byte counts), not the data.  ``ZSTD_compressCCtx`` and python-zstandard
write that length in the frame header (Frame_Content_Size); the zstd tool reading a pipe
does not.  The layout is RFC 8878 section 3.1.1 (Zstandard frames; also zstd's
doc/zstd_compression_format.md#frame_header, github.com/facebook/zstd): magic,
Frame_Header_Descriptor, optional Window_Descriptor, Dictionary_ID, Frame_Content_Size,
then blocks of a 3-byte header each, then an optional 4-byte checksum.  The blocks are walked (their
headers only) so that the answer is given only for exactly one frame filling the payload;
anything else is None and the caller decodes.  A decoder checks the announced size against
what it produced (libzstd's ``corruption_detected``), so a frame that lies is refused where
it is written.  Python 3.5, stdlib only.
"""

import struct

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

MAGIC = 0xFD2FB528
_DID_BYTES = (0, 1, 2, 4)
_FCS_BYTES = (0, 2, 4, 8)


def content_size(payload):
    # type: (bytes) -> typing.Optional[int]
    """The Frame_Content_Size of the single zstd frame that ``payload`` is, else None."""
    if len(payload) < 6 or struct.unpack_from("<I", payload)[0] != MAGIC:
        return None
    fhd = payload[4]
    single = fhd & 0x20
    if fhd & 0x08:  # reserved bit: not a frame this reader knows
        return None
    pos = 5 + (0 if single else 1) + _DID_BYTES[fhd & 0x03]
    fcs_flag = fhd >> 6
    nbytes = _FCS_BYTES[fcs_flag] or (1 if single else 0)
    if nbytes == 0 or pos + nbytes > len(payload):
        return None  # the size is not announced
    raw = payload[pos:pos + nbytes] + b"\0" * (8 - nbytes)
    size = struct.unpack("<Q", raw)[0] + (256 if nbytes == 2 else 0)
    pos += nbytes
    while True:  # the blocks: Last_Block (bit 0), Block_Type (bits 1-2), Block_Size
        if pos + 3 > len(payload):
            return None
        head = payload[pos] | payload[pos + 1] << 8 | payload[pos + 2] << 16
        btype, bsize = (head >> 1) & 3, head >> 3
        if btype == 3:  # reserved
            return None
        pos += 3 + (1 if btype == 1 else bsize)  # an RLE block holds one byte
        if head & 1:
            break
    pos += 4 if fhd & 0x04 else 0  # Content_Checksum
    return size if pos == len(payload) else None
