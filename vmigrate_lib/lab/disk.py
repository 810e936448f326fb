"""One virtual disk of a lab VM: a sparse flat file, its CBT map and a snapshot delta.

While a snapshot exists the flat file is the frozen point in time that the data
plane copies, so it must not change: guest writes go to ``-delta.bin`` instead,
copy-on-write per 64 KiB grain, and each grain taken over is appended to
``-delta.map`` *after* its base copy landed in the delta, so a crash never
leaves a mapped grain without its data.  Removing the snapshot copies the delta
grains back (consolidation) and marks them in the CBT map.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

from ..errors import LabError
from ..extents import Extent, align, from_blocks, normalize
from .ctk import GRAIN, ChangeTracker
from .layout import disk_stem
from .vmconfig import DiskConfig

_U32 = struct.Struct("<I")


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
        stem = disk_stem(cfg.file)
        self.base_path = vmdir / cfg.file
        self.delta_path = vmdir / f"{stem}-delta.bin"
        self.map_path = vmdir / f"{stem}-delta.map"
        try:
            self._base = os.open(self.base_path, os.O_RDWR)
        except OSError as exc:
            raise LabError(
                f"cannot open disk {self.base_path}: {exc}", path=str(self.base_path)
            ) from exc
        self._delta: int | None = None
        self._map: int | None = None
        self.delta_grains: set[int] = set()
        #: grains written to the delta while a consolidation pass runs (re-copied under stun)
        self.redirty: set[int] | None = None

    @property
    def key(self) -> int:
        return self.cfg.key

    @property
    def capacity(self) -> int:
        return self.cfg.capacity

    def has_delta_files(self) -> bool:
        return self.delta_path.exists() or self.map_path.exists()

    # --- snapshot delta ------------------------------------------------------------
    def start_delta(self) -> None:
        """Begin a new snapshot's delta from clean, empty files."""
        self.drop_delta()
        self.open_delta()

    def open_delta(self) -> None:
        """Start (or resume) redirecting writes to the delta; loads the grain map."""
        if self._delta is not None:
            return
        self._delta = os.open(self.delta_path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self._delta, self.capacity)
        self._map = os.open(self.map_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        raw = os.pread(self._map, os.fstat(self._map).st_size, 0)
        whole = len(raw) - len(raw) % 4
        if whole != len(raw):  # torn append after a crash: the grain was never mapped
            os.ftruncate(self._map, whole)
        self.delta_grains = {g for (g,) in _U32.iter_unpack(raw[:whole])}

    def drop_delta(self) -> None:
        """Forget the delta (after consolidation, or leftovers of an unfinished create)."""
        for fd in (self._delta, self._map):
            if fd is not None:
                os.close(fd)
        self._delta = self._map = None
        self.delta_grains = set()
        self.redirty = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.map_path)  # map first: without it the delta means nothing
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.delta_path)

    def _take_grain(self, g: int) -> None:
        assert self._delta is not None and self._map is not None
        off = g * GRAIN
        data = os.pread(self._base, GRAIN, off)
        if data.strip(b"\0"):
            os.pwrite(self._delta, data, off)
        os.write(self._map, _U32.pack(g))
        self.delta_grains.add(g)

    def copy_back(self, grains: list[int] | set[int]) -> None:
        """Consolidation step: delta grains -> base (idempotent)."""
        assert self._delta is not None
        for g in sorted(grains):
            off = g * GRAIN
            n = min(GRAIN, self.capacity - off)
            os.pwrite(self._base, os.pread(self._delta, n, off), off)

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
        for g in range(offset // GRAIN, (end - 1) // GRAIN + 1):
            if g not in self.delta_grains:
                self._take_grain(g)
            if self.redirty is not None:
                self.redirty.add(g)
        os.pwrite(self._delta, data, offset)

    def read(self, offset: int, length: int) -> bytes:
        """The guest's view: delta grains where present, else the base."""
        if self._delta is None or not self.delta_grains:
            return os.pread(self._base, length, offset)
        parts = []
        pos, end = offset, offset + length
        while pos < end:
            g = pos // GRAIN
            n = min(end, (g + 1) * GRAIN) - pos
            fd = self._delta if g in self.delta_grains else self._base
            parts.append(os.pread(fd, n, pos))
            pos += n
        return b"".join(parts)

    def allocated(self) -> list[Extent]:
        """Allocated areas of the guest's view (base allocation plus delta grains)."""
        base = allocated_extents(self._base, self.capacity)
        if not self.delta_grains:
            return base
        return normalize(base + from_blocks(self.delta_grains, GRAIN, self.capacity))

    def fsync(self) -> None:
        for fd in (self._base, self._delta, self._map):
            if fd is not None:
                os.fsync(fd)
        if self.ctk is not None:
            self.ctk.flush()

    def close(self) -> None:
        for fd in (self._delta, self._map):
            if fd is not None:
                os.close(fd)
        self._delta = self._map = None
        os.close(self._base)
        if self.ctk is not None:
            self.ctk.close()
            self.ctk = None
