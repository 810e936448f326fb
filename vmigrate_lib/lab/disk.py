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

import os
from pathlib import Path

from ..errors import LabError
from ..extents import Extent, align, from_blocks, normalize
from .ctk import GRAIN, ChangeTracker
from .deltachain import DeltaChain
from .layout import disk_stem
from .sesparse import GRAIN as DELTA_GRAIN
from .vmconfig import DiskConfig

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
    """Reads and writes of the guest's view of one disk (base, or base + its deltas)."""

    def __init__(self, vmdir: Path, cfg: DiskConfig, ctk: ChangeTracker | None) -> None:
        self.cfg = cfg
        self.ctk = ctk
        self.vmdir = vmdir
        self.base_path = vmdir / cfg.file
        try:
            self._base = os.open(self.base_path, os.O_RDWR)
        except OSError as exc:
            raise LabError(
                f"cannot open disk {self.base_path}: {exc}", path=str(self.base_path)
            ) from exc
        self.chain = DeltaChain(vmdir, disk_stem(cfg.file), cfg.file, cfg.capacity, self._base)
        #: grains written to the delta while a consolidation pass runs (re-copied under stun)
        self.redirty: set[int] | None = None

    @property
    def key(self) -> int:
        return self.cfg.key

    @property
    def capacity(self) -> int:
        return self.cfg.capacity

    @property
    def top(self) -> Path | None:
        """Descriptor of the delta the guest writes (``alice-00000N.vmdk``), if any."""
        return self.chain.top.descriptor if self.chain.top is not None else None

    @property
    def delta_grains(self) -> set[int]:
        """64 KiB grains (CBT's) holding at least one grain of the top delta."""
        top = self.chain.top
        return {g // _PER_CBT for g in top.file.slots} if top is not None else set()

    def has_delta_files(self) -> bool:
        return self.chain.has_files()

    # --- snapshot deltas -------------------------------------------------------------
    def open_delta(self, number: int) -> None:
        """Start (or resume) redirecting writes to snapshot ``number``'s delta, on top."""
        self.chain.push(number)

    def drop_delta(self) -> None:
        """No snapshot left: forget every delta (leftovers of an unfinished create too)."""
        self.chain.clear()
        self.redirty = None

    def copy_back(self, grains: list[int] | set[int]) -> None:
        """Consolidation step: the top delta's grains within these 64 KiB grains -> its
        parent (the flat file or the delta below); idempotent."""
        self.chain.merge(len(self.chain.layers) - 1,
                         (g * _PER_CBT + i for g in grains for i in range(_PER_CBT)))

    # --- geometry --------------------------------------------------------------------
    def grow(self, capacity: int) -> None:
        """Extend the flat file (sparse) and the change map; the caller saves the config.

        Only without a snapshot (no delta).  The map is replaced by a larger one
        in a new epoch, so no change id from before the resize can be used.
        """
        assert not self.chain.layers, "resize with a snapshot delta"
        os.ftruncate(self._base, capacity)
        os.fsync(self._base)
        if self.ctk is not None:
            path = self.ctk.path
            self.ctk.close()
            self.ctk = None
            self.ctk = ChangeTracker.replace(path, capacity)
        self.cfg.capacity = capacity
        self.chain.capacity = capacity  # the next snapshot's delta covers the new size

    # --- I/O -------------------------------------------------------------------------
    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset < 0 or end > self.capacity:
            raise LabError("write beyond the end of the disk", disk_key=self.key, offset=offset)
        if not self.chain.layers:
            if self.ctk is not None:  # mark first: a crash in between over-reports, never misses
                self.ctk.mark(offset, len(data))
            os.pwrite(self._base, data, offset)
            return
        if self.redirty is not None:
            self.redirty.update(range(offset // GRAIN, (end - 1) // GRAIN + 1))
        self.chain.write(offset, data)

    def read(self, offset: int, length: int) -> bytes:
        """The guest's view: the highest delta holding each grain, else the base."""
        if not self.chain.layers:
            return os.pread(self._base, length, offset)
        return self.chain.read(offset, length)

    def allocated(self) -> list[Extent]:
        """Allocated areas of the guest's view (base allocation plus every delta's grains)."""
        base = allocated_extents(self._base, self.capacity)
        grains = {g // _PER_CBT for la in self.chain.layers for g in la.file.slots}
        if not grains:
            return base
        return normalize(base + from_blocks(grains, GRAIN, self.capacity))

    def fsync(self) -> None:
        os.fsync(self._base)
        self.chain.fsync()
        if self.ctk is not None:
            self.ctk.flush()

    def close(self) -> None:
        self.chain.close()
        os.close(self._base)
        if self.ctk is not None:
            self.ctk.close()
            self.ctk = None
