"""Readers of VMware's snapshot delta files: SEsparse (VMFS-6) and vmfsSparse/COWD (VMFS-5).

Stdlib only, Python 3.5 syntax: this runs in the agent on ESXi's python3.  A
frozen delta's grain table lists exactly the grains the guest wrote since the
snapshot was taken; that is the change set of the snapshot-delta mode.

VMware does not document either layout.  The public reference is QEMU's vmdk
driver, ``block/vmdk.c`` (qemu/qemu), which this module follows field by field:

* SEsparse: ``VMDKSESparseConstHeader`` / ``VMDKSESparseVolatileHeader``,
  ``check_se_sparse_const_header``, ``check_se_sparse_volatile_header``,
  ``vmdk_open_se_sparse`` (grain directory and tables in sectors, 64-bit
  entries) and ``get_cluster_offset`` (grain-directory entry ``0x1000_0000``
  in the top 32 bits; grain-table entry type in the top nibble: 0 unallocated,
  1 SCSI-unmapped, 2 zero, 3 allocated with the grain index split into bits
  48-59 and 0-47).
* vmfsSparse: ``VMDK3Header`` and ``vmdk_open_vmfs_sparse`` ("COWD" magic,
  32-bit sector offsets, 4096 entries per grain table); the header's tail
  (parent name, generation, ``uncleanShutdown``) as libyal/libvmdk's
  ``cowd_sparse_file_header.h`` documents it.

Strict: anything QEMU refuses, or that QEMU does not know either, is a
:class:`DeltaFormatError` naming the file and the field; never a guess.
"""

import os
import struct

SECTOR = 512

SE_CONST_MAGIC = 0xCAFEBABE
SE_VOLATILE_MAGIC = 0xCAFECAFE
SE_VERSION = 0x0000000200000001
SE_GRAIN_SECTORS = 8  # the only grain size QEMU accepts (4 KiB)
SE_GT_SECTORS = 64  # 4096 entries of 8 bytes: one table covers 16 MiB
SE_GT_ENTRIES = SE_GT_SECTORS * SECTOR // 8
SE_CONST = struct.Struct("<26Q304s")
SE_VOLATILE = struct.Struct("<4Q480s")
SE_GD_ALLOCATED = 0x10000000

COWD_MAGIC = b"COWD"
COWD_HEAD = struct.Struct("<4s10I")
COWD_GT_ENTRIES = 4096
COWD_VERSION = 1  # see the module doc of cowd reading: QEMU checks none
COWD_DIRTY_OFFSET = 1648  # uncleanShutdown, after name/description/savedGeneration

DATA = "data"
ZERO = "zero"


class DeltaFormatError(ValueError):
    """A delta file this reader does not understand, with what and where."""

    def __init__(self, path, what):
        ValueError.__init__(self, "{}: {} (not a delta this reader knows; nothing was read "
                                  "from it)".format(path, what))
        self.path = path
        self.what = what


def _pread_exact(fd, n, off, path, what):
    data = os.pread(fd, n, off)
    if len(data) != n:
        raise DeltaFormatError(path, "{} at byte {} lies beyond the end of the file".format(what, off))
    return data


class DeltaFile(object):
    """One opened delta: its grains (guest offset -> file offset) and their data."""

    format = ""

    def __init__(self, path, fd):
        self.path = path
        self.fd = fd
        self.capacity = 0  # guest bytes
        self.grain = 0  # guest bytes per grain
        #: guest grain index -> file byte offset of its data, or None for a zero grain
        self.grains = {}

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def extents(self):
        """Changed guest areas, sorted and merged: ``[offset, length, "data"|"zero"]``."""
        out = []
        for g in sorted(self.grains):
            kind = ZERO if self.grains[g] is None else DATA
            off = g * self.grain
            length = min(self.grain, self.capacity - off)
            last = out[-1] if out else None
            if last is not None and last[2] == kind and last[0] + last[1] == off:
                last[1] += length
            else:
                out.append([off, length, kind])
        return out

    def read(self, offset, length):
        """Guest bytes ``[offset, offset+length)``, which must lie in changed grains."""
        if offset < 0 or length < 0 or offset + length > self.capacity:
            raise ValueError("read [{}, +{}) outside the disk of {} bytes".format(
                offset, length, self.capacity))
        parts = []
        pos, end = offset, offset + length
        while pos < end:
            g = pos // self.grain
            n = min(end, (g + 1) * self.grain) - pos
            if g not in self.grains:
                raise ValueError("{}: guest offset {} is not in the delta (unchanged grain)".format(
                    self.path, pos))
            where = self.grains[g]
            if where is None:
                parts.append(b"\0" * n)
            else:
                parts.append(_pread_exact(self.fd, n, where + pos - g * self.grain, self.path,
                                          "grain data"))
            pos += n
        return b"".join(parts)


class SeSparse(DeltaFile):
    """An SEsparse delta (``createType="seSparse"``, the ``-sesparse.vmdk`` file)."""

    format = "seSparse"

    def load(self):
        size = os.fstat(self.fd).st_size
        h = SE_CONST.unpack(_pread_exact(self.fd, SECTOR, 0, self.path, "const header"))
        (magic, version, capacity, grain_size, gt_size, flags, r1, r2, r3, r4,
         vh_off, _vh_size, _jh_off, _jh_size, _j_off, _j_size, gd_off, gd_size,
         gts_off, gts_size, _fb_off, _fb_size, _bm_off, _bm_size, grains_off, grains_size,
         pad) = h
        checks = [
            (magic == SE_CONST_MAGIC, "const header magic is {:#x}, not 0xcafebabe".format(magic)),
            (version == SE_VERSION, "version {:#018x} is not 0x0000000200000001".format(version)),
            (grain_size == SE_GRAIN_SECTORS, "grain size {} sectors is not 8".format(grain_size)),
            (gt_size == SE_GT_SECTORS, "grain table size {} sectors is not 64".format(gt_size)),
            (flags == 0, "flags {:#x} are not 0".format(flags)),
            (not (r1 or r2 or r3 or r4), "reserved fields are not 0"),
            (not pad.strip(b"\0"), "const header padding is not 0"),
            (capacity > 0, "capacity is 0"),
        ]
        for ok, what in checks:
            if not ok:
                raise DeltaFormatError(self.path, what)
        vmagic, _free_gt, _txn, replay, vpad = SE_VOLATILE.unpack(_pread_exact(
            self.fd, SECTOR, vh_off * SECTOR, self.path, "volatile header"))
        if vmagic != SE_VOLATILE_MAGIC:
            raise DeltaFormatError(self.path, "volatile header magic is {:#x}, not 0xcafecafe".format(
                vmagic))
        if replay:
            raise DeltaFormatError(self.path, "the journal needs replaying (the file was not closed "
                                              "cleanly; let ESXi open the VM first)")
        if vpad.strip(b"\0"):
            raise DeltaFormatError(self.path, "volatile header padding is not 0")
        self.capacity = capacity * SECTOR
        self.grain = grain_size * SECTOR
        per_gt = SE_GT_ENTRIES * grain_size  # sectors covered by one grain table
        needed = -(-capacity // per_gt)
        if gd_size * SECTOR // 8 < needed:
            raise DeltaFormatError(self.path, "grain directory of {} entries cannot cover {} "
                                              "sectors".format(gd_size * SECTOR // 8, capacity))
        gd = struct.unpack("<{}Q".format(gd_size * SECTOR // 8), _pread_exact(
            self.fd, gd_size * SECTOR, gd_off * SECTOR, self.path, "grain directory"))
        for i, entry in enumerate(gd):
            if entry == 0:
                continue
            if i >= needed or entry >> 32 != SE_GD_ALLOCATED:
                raise DeltaFormatError(self.path, "grain directory entry {} is {:#018x}".format(
                    i, entry))
            gt_index = entry & 0xFFFFFFFF
            if (gt_index + 1) * SE_GT_SECTORS > gts_size:
                raise DeltaFormatError(self.path, "grain table {} lies outside the tables region"
                                       .format(gt_index))
            self._load_table(i, gts_off * SECTOR + gt_index * SE_GT_SECTORS * SECTOR,
                             grains_off * SECTOR, grains_size // grain_size, size)

    def _load_table(self, i, where, grains_at, max_grains, size):
        raw = _pread_exact(self.fd, SE_GT_SECTORS * SECTOR, where, self.path,
                           "grain table {}".format(i))
        if not raw.strip(b"\0"):
            return
        first = i * SE_GT_ENTRIES
        limit = -(-self.capacity // self.grain)
        for j, e in enumerate(struct.unpack("<{}Q".format(SE_GT_ENTRIES), raw)):
            if e == 0:
                continue
            g = first + j
            kind = e >> 60
            if g >= limit or kind not in (1, 2, 3):
                raise DeltaFormatError(self.path, "grain table entry for grain {} is {:#018x}"
                                       .format(g, e))
            if kind != 3:
                self.grains[g] = None  # SCSI-unmapped or zeroed: reads as zeros
                continue
            index = ((e & 0x0FFF000000000000) >> 48) | ((e & 0x0000FFFFFFFFFFFF) << 12)
            at = grains_at + index * self.grain
            if index >= max_grains or at + self.grain > size:
                raise DeltaFormatError(self.path, "grain {} points at grain slot {} outside the "
                                                  "file".format(g, index))
            self.grains[g] = at


class Cowd(DeltaFile):
    """A vmfsSparse delta (``createType="vmfsSparse"``, the ``-delta.vmdk`` file, magic COWD)."""

    format = "vmfsSparse"

    def load(self):
        size = os.fstat(self.fd).st_size
        head = _pread_exact(self.fd, 4 * SECTOR, 0, self.path, "COWD header")
        (magic, version, _flags, sectors, granularity, gd_off, gd_entries, _free, _c, _h,
         _s) = COWD_HEAD.unpack_from(head, 0)
        checks = [
            (magic == COWD_MAGIC, "magic is {!r}, not b'COWD'".format(magic)),
            (version == COWD_VERSION, "COWD version {} is not 1".format(version)),
            (sectors > 0, "capacity is 0"),
            (0 < granularity <= 0x200000, "grain size of {} sectors".format(granularity)),
            (gd_off > 0, "grain directory offset is 0"),
            (head[COWD_DIRTY_OFFSET] == 0, "uncleanShutdown is set (the file was not closed "
                                           "cleanly; let ESXi open the VM first)"),
        ]
        for ok, what in checks:
            if not ok:
                raise DeltaFormatError(self.path, what)
        self.capacity = sectors * SECTOR
        self.grain = granularity * SECTOR
        needed = -(-sectors // (COWD_GT_ENTRIES * granularity))
        if gd_entries < needed:
            raise DeltaFormatError(self.path, "grain directory of {} entries cannot cover {} "
                                              "sectors".format(gd_entries, sectors))
        gd = struct.unpack("<{}I".format(gd_entries), _pread_exact(
            self.fd, 4 * gd_entries, gd_off * SECTOR, self.path, "grain directory"))
        limit = -(-sectors // granularity)
        for i, gt_sector in enumerate(gd):
            if gt_sector == 0:
                continue
            if i >= needed:
                raise DeltaFormatError(self.path, "grain directory entry {} beyond the disk".format(i))
            raw = _pread_exact(self.fd, 4 * COWD_GT_ENTRIES, gt_sector * SECTOR, self.path,
                               "grain table {}".format(i))
            for j, at in enumerate(struct.unpack("<{}I".format(COWD_GT_ENTRIES), raw)):
                if at == 0:
                    continue
                g = i * COWD_GT_ENTRIES + j
                if g >= limit or at * SECTOR + self.grain > size:
                    raise DeltaFormatError(self.path, "grain {} points at sector {} outside the "
                                                      "file".format(g, at))
                self.grains[g] = at * SECTOR


def open_delta(path):
    """Open and validate a delta file, SEsparse or COWD, told by its first bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        first = os.pread(fd, 8, 0)
        if first[:4] == COWD_MAGIC:
            delta = Cowd(path, fd)  # type: DeltaFile
        elif len(first) == 8 and struct.unpack("<Q", first)[0] == SE_CONST_MAGIC:
            delta = SeSparse(path, fd)
        elif first[:4] == b"KDMV":
            raise DeltaFormatError(path, "a hosted sparse extent (KDMV), not an ESXi snapshot delta")
        else:
            raise DeltaFormatError(path, "neither SEsparse (0xcafebabe) nor COWD magic")
        delta.load()
    except BaseException:
        os.close(fd)
        raise
    return delta
