"""One virtual disk of a lab VM: a sparse flat file, its CBT map and a snapshot delta.

While a snapshot exists the flat file is the frozen point in time that the data
plane copies, so it must not change: guest writes go to the snapshot's delta
instead, written as ESXi writes it on VMFS-6, an SEsparse file with its VMware
descriptor (``alice-00000N.vmdk`` + ``alice-00000N-sesparse.vmdk``, parent
``alice.vmdk`` over the flat file; :mod:`.sesparse`), copy-on-write per 4 KiB
grain, each grain's data landing before its table entry.  Removing the snapshot
copies the delta back (consolidation) and marks its 64 KiB CBT grains.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from ..atomicfile import write_atomic
from ..errors import LabError
from ..extents import Extent, align, from_blocks, normalize
from .ctk import GRAIN, ChangeTracker
from .layout import disk_stem
from .sesparse import GRAIN as DELTA_GRAIN
from .sesparse import SeSparseFile, descriptor, new_cid, read_cid
from .vmconfig import DiskConfig

#: VMware's parentCID of a disk without a parent
NO_PARENT = 0xFFFFFFFF
_PER_CBT = GRAIN // DELTA_GRAIN


def allocated_extents(fd: int, size: int) -> list[Extent]:
    """Non-hole areas of an open file (``SEEK_DATA``/``SEEK_HOLE``), grain-aligned."""
    out: list[Extent] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append(Extent(start, end - start))
        pos = end
    return align(out, GRAIN, limit=size)


def ctk_path(vmdir: Path, cfg: DiskConfig) -> Path:
    return vmdir / f"{disk_stem(cfg.file)}-ctk.bin"


class VirtualDisk:
    """Reads and writes of the guest's view of one disk (base, or base + delta)."""

    def __init__(self, vmdir: Path, cfg: DiskConfig, ctk: ChangeTracker | None) -> None:
        self.cfg = cfg
        self.ctk = ctk
        self.vmdir = vmdir
        self.stem = disk_stem(cfg.file)
        self.base_path = vmdir / cfg.file
        try:
            self._base = os.open(self.base_path, os.O_RDWR)
        except OSError as exc:
            raise LabError(
                f"cannot open disk {self.base_path}: {exc}", path=str(self.base_path)
            ) from exc
        self._delta: SeSparseFile | None = None
        #: descriptor of the open delta (``alice-00000N.vmdk``), the top of the chain
        self.top: Path | None = None
        #: 64 KiB grains (CBT's) holding at least one delta grain
        self.delta_grains: set[int] = set()
        #: grains written to the delta while a consolidation pass runs (re-copied under stun)
        self.redirty: set[int] | None = None

    @property
    def key(self) -> int:
        return self.cfg.key

    @property
    def capacity(self) -> int:
        return self.cfg.capacity

    @property
    def base_descriptor(self) -> Path:
        return self.vmdir / f"{self.stem}.vmdk"

    def delta_files(self) -> list[Path]:
        """This disk's snapshot files in the folder (descriptors and SEsparse extents)."""
        pattern = re.compile(re.escape(self.stem) + r"-[0-9]{6}(-sesparse)?\.vmdk")
        return sorted(self.vmdir / n for n in os.listdir(self.vmdir) if pattern.fullmatch(n))

    def has_delta_files(self) -> bool:
        return bool(self.delta_files()) or self.base_descriptor.exists()

    # --- snapshot delta ------------------------------------------------------------
    def start_delta(self, number: int) -> None:
        """Begin snapshot ``number``'s delta from clean, empty files."""
        self.drop_delta()
        self.open_delta(number)

    def open_delta(self, number: int) -> None:
        """Start (or resume) redirecting writes to the delta; loads its grain map."""
        if self._delta is not None:
            return
        old = self.vmdir / f"{self.stem}-delta.map"
        if old.exists():  # an older lab's delta: starting a new one would lose its writes
            raise LabError(f"{old} is a snapshot delta of an older lab version; remove the "
                           "snapshot with that version, or recreate the lab", path=str(old))
        top = self.vmdir / f"{self.stem}-{number:06d}.vmdk"
        extent = top.with_name(f"{self.stem}-{number:06d}-sesparse.vmdk")
        if extent.exists():
            self._delta = SeSparseFile.open(extent)
        else:
            self._delta = SeSparseFile.create(extent, self.capacity)
        if not top.exists():
            base = self.base_descriptor
            if not base.exists():
                write_atomic(base, descriptor(cid=new_cid(), parent_cid=NO_PARENT,
                                              create_type="vmfs", extent=self.cfg.file,
                                              capacity=self.capacity))
            write_atomic(top, descriptor(cid=new_cid(), parent_cid=read_cid(base),
                                         create_type="seSparse", extent=extent.name,
                                         capacity=self.capacity, parent_hint=base.name))
        self.top = top
        self.delta_grains = {g // _PER_CBT for g in self._delta.slots}

    def drop_delta(self) -> None:
        """Forget the delta (after consolidation, or leftovers of an unfinished create)."""
        if self._delta is not None:
            self._delta.close()
        self._delta = self.top = None
        self.delta_grains = set()
        self.redirty = None
        for path in (*self.delta_files(), self.base_descriptor):  # descriptors first
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def copy_back(self, grains: list[int] | set[int]) -> None:
        """Consolidation step: delta grains -> base (idempotent)."""
        assert self._delta is not None
        for g in sorted(grains):
            off = g * GRAIN
            n = min(GRAIN, self.capacity - off)
            os.pwrite(self._base, self.read(off, n), off)

    # --- geometry --------------------------------------------------------------------
    def grow(self, capacity: int) -> None:
        """Extend the flat file (sparse) and the change map; the caller saves the config.

        Only without a snapshot (no delta).  The map is replaced by a larger one
        in a new epoch, so no change id from before the resize can be used.
        """
        assert self._delta is None, "resize with a snapshot delta"
        os.ftruncate(self._base, capacity)
        os.fsync(self._base)
        if self.ctk is not None:
            path = self.ctk.path
            self.ctk.close()
            self.ctk = None
            self.ctk = ChangeTracker.replace(path, capacity)
        self.cfg.capacity = capacity

    # --- I/O -------------------------------------------------------------------------
    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset < 0 or end > self.capacity:
            raise LabError("write beyond the end of the disk", disk_key=self.key, offset=offset)
        if self._delta is None:
            if self.ctk is not None:  # mark first: a crash in between over-reports, never misses
                self.ctk.mark(offset, len(data))
            os.pwrite(self._base, data, offset)
            return
        if self.redirty is not None:
            self.redirty.update(range(offset // GRAIN, (end - 1) // GRAIN + 1))
        new = self._delta.write(offset, data, self._read_base)
        self.delta_grains.update(g // _PER_CBT for g in new)

    def _read_base(self, offset: int, length: int) -> bytes:
        return os.pread(self._base, length, offset).ljust(length, b"\0")

    def read(self, offset: int, length: int) -> bytes:
        """The guest's view: delta grains where present, else the base."""
        if self._delta is None or not self._delta.slots:
            return os.pread(self._base, length, offset)
        parts = []
        pos, end = offset, offset + length
        while pos < end:
            g = pos // DELTA_GRAIN
            n = min(end, (g + 1) * DELTA_GRAIN) - pos
            grain = self._delta.read_grain(g)
            if grain is None:
                parts.append(os.pread(self._base, n, pos))
            else:
                lo = pos - g * DELTA_GRAIN
                parts.append(grain[lo : lo + n])
            pos += n
        return b"".join(parts)

    def allocated(self) -> list[Extent]:
        """Allocated areas of the guest's view (base allocation plus delta grains)."""
        base = allocated_extents(self._base, self.capacity)
        if not self.delta_grains:
            return base
        return normalize(base + from_blocks(self.delta_grains, GRAIN, self.capacity))

    def fsync(self) -> None:
        os.fsync(self._base)
        if self._delta is not None:
            self._delta.fsync()
        if self.ctk is not None:
            self.ctk.flush()

    def close(self) -> None:
        if self._delta is not None:
            self._delta.close()
        self._delta = None
        os.close(self._base)
        if self.ctk is not None:
            self.ctk.close()
            self.ctk = None
