"""The lab's writer of SEsparse snapshot deltas and VMware disk descriptors.

ESXi (VMFS-6) writes a snapshot's delta as ``<disk>-00000N.vmdk`` (a text
descriptor: ``createType="seSparse"``, ``parentFileNameHint``, ``CID`` /
``parentCID``) and ``<disk>-00000N-sesparse.vmdk`` (the grains).  The lab writes
the same files so that an independent reader, QEMU's vmdk driver
(``block/vmdk.c``: ``vmdk_open_se_sparse``, ``get_cluster_offset``,
``vmdk_parent_open``, ``vmdk_read_cid``/``vmdk_is_cid_valid``), reads every lab
chain, and the agent's reader (``dataplane/agent/deltaformats.py``) is tested
against files it did not write itself.

Only the fields QEMU reads are ESXi's; the placement of the regions (journal,
free bitmap, back map: sizes 0 here) is the lab's own choice, a guess, since
VMware does not document the format.  Grains are 4 KiB (the only size QEMU
accepts), a grain is copied on write from the parent's view, its data lands
before its table entry, and a table before its directory entry, so a crash
never leaves an entry without its data (a slot written but never mapped is
reused).  QEMU has no writer ("No write support for seSparse images
available"), hence this one, for the lab only.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Callable
from pathlib import Path

from ..errors import LabError

SECTOR = 512
GRAIN = 4096
GRAIN_SECTORS = GRAIN // SECTOR
GT_ENTRIES = 4096
GT_BYTES = GT_ENTRIES * 8
GT_COVERS = GT_ENTRIES * GRAIN  # 16 MiB of guest data per grain table
CONST_MAGIC = 0xCAFEBABE
VOLATILE_MAGIC = 0xCAFECAFE
VERSION = 0x0000000200000001
_CONST = struct.Struct("<26Q304s")
_VOLATILE = struct.Struct("<4Q480s")
_GD_ALLOCATED = 0x10000000 << 32
_GTE_ALLOCATED = 0x3 << 60

#: Reads ``length`` guest bytes at ``offset`` from the parent's view (copy on write).
ParentRead = Callable[[int, int], bytes]


def _align(n: int, to: int) -> int:
    return -(-n // to) * to


def encode_grain_entry(slot: int) -> int:
    """A type-3 (allocated) grain-table entry for grain slot ``slot``, as QEMU decodes it."""
    return _GTE_ALLOCATED | ((slot & 0xFFF) << 48) | (slot >> 12)


def decode_grain_entry(entry: int) -> int:
    return ((entry & 0x0FFF000000000000) >> 48) | ((entry & 0x0000FFFFFFFFFFFF) << 12)


class SeSparseFile:
    """One ``-sesparse.vmdk`` file open for the guest's writes and reads."""

    def __init__(self, path: Path, fd: int, header: tuple[int, ...]) -> None:
        self.path = path
        self._fd = fd
        sectors = header[2]
        self.capacity = sectors * SECTOR
        self._gd_at = header[16] * SECTOR
        self._gts_at = header[18] * SECTOR
        self._grains_at = header[24] * SECTOR
        self._tables = -(-self.capacity // GT_COVERS)
        #: guest 4 KiB grain -> slot in the grains region
        self.slots: dict[int, int] = {}
        self._gd: set[int] = set()
        self._load()
        self._next = max(self.slots.values(), default=-1) + 1
        self._size = os.fstat(fd).st_size

    # --- create / open -------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, capacity: int) -> SeSparseFile:
        """A new empty delta for a disk of ``capacity`` bytes (a multiple of 512)."""
        if capacity <= 0 or capacity % SECTOR:
            raise LabError(f"SEsparse capacity {capacity} is not a positive multiple of 512")
        sectors = capacity // SECTOR
        tables = -(-capacity // GT_COVERS)
        gd_at, gd_size = 8, _align(tables * 8, SECTOR) // SECTOR
        gts_at = _align(gd_at + gd_size, 8)
        gts_size = tables * (GT_BYTES // SECTOR)
        grains_at = _align(gts_at + gts_size, 8)
        grains_size = _align(sectors, GRAIN_SECTORS)
        fields = [CONST_MAGIC, VERSION, sectors, GRAIN_SECTORS, GT_BYTES // SECTOR, 0, 0, 0, 0, 0,
                  1, 1,  # volatile header
                  2, 1, 3, 0,  # journal header, journal (lab: none)
                  gd_at, gd_size, gts_at, gts_size,
                  grains_at, 0, grains_at, 0,  # free bitmap, back map (lab: none)
                  grains_at, grains_size]
        tmp = path.with_name(path.name + ".tmp")  # renamed into place whole: never a torn header
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.pwrite(fd, _CONST.pack(*fields, b""), 0)
            os.pwrite(fd, _VOLATILE.pack(VOLATILE_MAGIC, 0, 1, 0, b""), SECTOR)
            os.ftruncate(fd, grains_at * SECTOR)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return cls.open(path)

    @classmethod
    def open(cls, path: Path) -> SeSparseFile:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise LabError(f"cannot open delta {path}: {exc}", path=str(path)) from exc
        head = _CONST.unpack(os.pread(fd, SECTOR, 0).ljust(SECTOR, b"\0"))
        if head[0] != CONST_MAGIC or head[1] != VERSION:
            os.close(fd)
            raise LabError(f"delta {path} is not a lab SEsparse file", path=str(path))
        return cls(path, fd, head)

    def _load(self) -> None:
        """The grain map from the file (after a crash, the entries that landed)."""
        gd = struct.unpack(f"<{self._tables}Q", os.pread(self._fd, 8 * self._tables, self._gd_at))
        for t, entry in enumerate(gd):
            if not entry:
                continue
            self._gd.add(t)
            raw = os.pread(self._fd, GT_BYTES, self._gts_at + t * GT_BYTES)
            for j, e in enumerate(struct.unpack(f"<{GT_ENTRIES}Q", raw)):
                if e >> 60 == 3:
                    self.slots[t * GT_ENTRIES + j] = decode_grain_entry(e)

    # --- I/O -------------------------------------------------------------------------
    def write(self, offset: int, data: bytes, parent: ParentRead) -> list[int]:
        """Write guest bytes; unmapped grains are first filled from ``parent``.

        Returns the grains newly mapped by this write."""
        new: list[int] = []
        pos, end = offset, offset + len(data)
        while pos < end:
            g = pos // GRAIN
            lo = g * GRAIN
            n = min(end, lo + GRAIN) - pos
            piece = data[pos - offset : pos - offset + n]
            slot = self.slots.get(g)
            if slot is None:
                whole = piece if n == GRAIN else self._merge(parent(lo, GRAIN), pos - lo, piece)
                self._map(g, whole)
                new.append(g)
            else:
                os.pwrite(self._fd, piece, self._grains_at + slot * GRAIN + pos - lo)
            pos += n
        return new

    @staticmethod
    def _merge(old: bytes, at: int, piece: bytes) -> bytes:
        return old[:at] + piece + old[at + len(piece) :]

    def _map(self, g: int, whole: bytes) -> None:
        slot = self._next
        self._next += 1
        at = self._grains_at + slot * GRAIN
        if whole.strip(b"\0"):
            os.pwrite(self._fd, whole, at)
        if self._size < at + GRAIN:
            os.ftruncate(self._fd, at + GRAIN)  # a zero grain stays a hole, inside the file
            self._size = at + GRAIN
        t, j = divmod(g, GT_ENTRIES)
        os.pwrite(self._fd, struct.pack("<Q", encode_grain_entry(slot)),
                  self._gts_at + t * GT_BYTES + 8 * j)
        if t not in self._gd:
            os.pwrite(self._fd, struct.pack("<Q", _GD_ALLOCATED | t), self._gd_at + 8 * t)
            self._gd.add(t)
        self.slots[g] = slot

    def read_grain(self, g: int) -> bytes | None:
        """A mapped grain's 4 KiB, or None when this delta does not hold it."""
        slot = self.slots.get(g)
        if slot is None:
            return None
        return os.pread(self._fd, GRAIN, self._grains_at + slot * GRAIN).ljust(GRAIN, b"\0")

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --- descriptors ------------------------------------------------------------------------
def new_cid() -> int:
    """A content id: random, never ``ffffffff`` (VMware's "no parent")."""
    return secrets.randbelow(0xFFFFFFFF)


def descriptor(*, cid: int, parent_cid: int, create_type: str, extent: str, capacity: int,
               parent_hint: str | None = None) -> bytes:
    """A VMware text descriptor.  ``CID`` comes before ``parentCID``: QEMU's
    ``vmdk_read_cid`` takes the first ``CID`` it finds in the text."""
    kind = {"seSparse": "SESPARSE", "vmfs": "VMFS", "vmfsSparse": "VMFSSPARSE"}[create_type]
    lines = ["# Disk DescriptorFile", "version=1", 'encoding="UTF-8"', f"CID={cid:08x}",
             f"parentCID={parent_cid:08x}", 'isNativeSnapshot="no"',
             f'createType="{create_type}"']
    if parent_hint is not None:
        lines.append(f'parentFileNameHint="{parent_hint}"')
    lines += ["", "# Extent description", f'RW {capacity // SECTOR} {kind} "{extent}"', "",
              "# The Disk Data Base", "#DDB", "", f'ddb.grain = "{GRAIN_SECTORS}"',
              'ddb.thinProvisioned = "1"', 'ddb.virtualHWVersion = "14"', ""]
    return "\n".join(lines).encode()


def read_cid(path: Path) -> int:
    """The ``CID`` of a descriptor written by :func:`descriptor`."""
    for line in path.read_text().splitlines():
        if line.startswith("CID="):
            return int(line[4:], 16)
    raise LabError(f"descriptor {path} has no CID line", path=str(path))
