"""A vmfsSparse (COWD) delta file for tests, laid out as QEMU's vmdk driver reads one.

QEMU cannot write this format (``qemu-img create -f vmdk -o subformat=`` offers
monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat and
streamOptimized only), so the test builds it from the layout QEMU reads
(qemu/qemu ``block/vmdk.c``: ``VMDK3Header``, ``vmdk_open_vmfs_sparse``: magic
"COWD", then version, flags, disk sectors, granularity, grain-directory offset
and size, 4096 32-bit entries per grain table, sector offsets) and checks with
``qemu-img`` that QEMU reads it back.  The header's tail (``uncleanShutdown`` at
byte 1648 of a 2048-byte header) follows libyal/libvmdk's
``cowd_sparse_file_header.h``.  Version 1 and flags 3 are what VMware's own
header is believed to carry (a guess: QEMU checks neither).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

SECTOR = 512
GT_ENTRIES = 4096
HEADER_SECTORS = 4


def write_cowd(path: Path, capacity: int, writes: list[tuple[int, bytes]], parent: bytes,
               *, granularity: int = 1, version: int = 1, dirty: bool = False) -> set[int]:
    """Write a COWD delta of ``capacity`` bytes holding ``writes`` over ``parent``'s
    content (copy on write per grain); returns the grain indexes allocated."""
    grain = granularity * SECTOR
    sectors = capacity // SECTOR
    tables = -(-sectors // (GT_ENTRIES * granularity))
    gd_sectors = -(-tables * 4 // SECTOR)
    view = bytearray(parent)
    touched: set[int] = set()
    for off, data in writes:
        view[off : off + len(data)] = data
        touched.update(range(off // grain, (off + len(data) - 1) // grain + 1))
    next_sector = HEADER_SECTORS + gd_sectors
    gt_at: dict[int, int] = {}
    for t in sorted({g // GT_ENTRIES for g in touched}):
        gt_at[t] = next_sector
        next_sector += GT_ENTRIES * 4 // SECTOR
    entries: dict[int, int] = {}
    for g in sorted(touched):
        entries[g] = next_sector
        next_sector += granularity
    head = struct.pack("<4s10I", b"COWD", version, 3, sectors, granularity, HEADER_SECTORS,
                       tables, next_sector, 0, 0, 0).ljust(HEADER_SECTORS * SECTOR, b"\0")
    if dirty:
        head = head[:1648] + b"\x01" + head[1649:]
    with open(path, "wb") as fh:
        fh.write(head)
        gd = [gt_at.get(t, 0) for t in range(tables)]
        fh.seek(HEADER_SECTORS * SECTOR)
        fh.write(struct.pack(f"<{tables}I", *gd))
        for t, at in gt_at.items():
            table = [entries.get(t * GT_ENTRIES + j, 0) for j in range(GT_ENTRIES)]
            fh.seek(at * SECTOR)
            fh.write(struct.pack(f"<{GT_ENTRIES}I", *table))
        for g, at in entries.items():
            fh.seek(at * SECTOR)
            fh.write(bytes(view[g * grain : (g + 1) * grain]))
        fh.truncate(next_sector * SECTOR)
        fh.flush()
        os.fsync(fh.fileno())
    return touched
