"""A lab disk's snapshot deltas, bottom to top, over its flat file: ESXi's chain.

Snapshot ``N`` of a disk ``alice`` is ``alice-00000N.vmdk`` (descriptor) +
``alice-00000N-sesparse.vmdk``; the first delta's parent is ``alice.vmdk`` (a
``vmfs`` descriptor of the flat file), each later one's the delta below it
(``parentFileNameHint``, ``parentCID``), so ``qemu-img`` reads any layer of the
chain.  The guest writes the top delta; a read takes each 4 KiB grain from the
highest layer holding it, else from the flat file.  Removing a snapshot merges
its delta into its parent (the flat file or the delta below: VMware's
consolidation), then points the delta above at that parent.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..atomicfile import write_atomic
from ..errors import LabError
from .sesparse import GRAIN, SeSparseFile, descriptor, new_cid, read_cid

#: VMware's parentCID of a disk without a parent
NO_PARENT = 0xFFFFFFFF


@dataclass
class Layer:
    number: int
    file: SeSparseFile
    descriptor: Path


class DeltaChain:
    """The deltas of one disk; ``base_fd`` is the open flat file (owned by the caller)."""

    def __init__(self, vmdir: Path, stem: str, flat: str, capacity: int, base_fd: int) -> None:
        self.vmdir = vmdir
        self.stem = stem
        self.flat = flat
        self.capacity = capacity
        self.base_fd = base_fd
        self.layers: list[Layer] = []

    # --- files -----------------------------------------------------------------------
    @property
    def base_descriptor(self) -> Path:
        return self.vmdir / f"{self.stem}.vmdk"

    def names(self, number: int) -> tuple[Path, Path]:
        """(descriptor, SEsparse extent) of snapshot ``number``'s delta."""
        top = self.vmdir / f"{self.stem}-{number:06d}.vmdk"
        return top, top.with_name(f"{self.stem}-{number:06d}-sesparse.vmdk")

    def numbers_on_disk(self) -> set[int]:
        pattern = re.compile(re.escape(self.stem) + r"-([0-9]{6})(-sesparse)?\.vmdk")
        return {int(m.group(1)) for n in os.listdir(self.vmdir) if (m := pattern.fullmatch(n))}

    def has_files(self) -> bool:
        return bool(self.numbers_on_disk()) or self.base_descriptor.exists()

    @property
    def top(self) -> Layer | None:
        return self.layers[-1] if self.layers else None

    # --- shape -----------------------------------------------------------------------
    def push(self, number: int) -> Layer:
        """Open (or create) snapshot ``number``'s delta on top; idempotent."""
        if self.top is not None and self.top.number == number:
            return self.top
        old = self.vmdir / f"{self.stem}-delta.map"
        if old.exists():  # an older lab's delta: starting a new one would lose its writes
            raise LabError(f"{old} is a snapshot delta of an older lab version; remove the "
                           "snapshot with that version, or recreate the lab", path=str(old))
        desc, extent = self.names(number)
        if extent.exists():
            file = SeSparseFile.open(extent)
        else:
            file = SeSparseFile.create(extent, self.capacity)
        parent = self.top.descriptor if self.top is not None else self._base_descriptor()
        if not desc.exists():
            write_atomic(desc, descriptor(cid=new_cid(), parent_cid=read_cid(parent),
                                          create_type="seSparse", extent=extent.name,
                                          capacity=self.capacity, parent_hint=parent.name))
        layer = Layer(number, file, desc)
        self.layers.append(layer)
        return layer

    def _base_descriptor(self) -> Path:
        base = self.base_descriptor
        if not base.exists():
            write_atomic(base, descriptor(cid=new_cid(), parent_cid=NO_PARENT, create_type="vmfs",
                                          extent=self.flat, capacity=self.capacity))
        return base

    def prune(self, keep: Iterable[int]) -> None:
        """Delete the files of deltas no snapshot owns (an unfinished create or removal)."""
        keep = set(keep)
        for number in self.numbers_on_disk() - keep - {la.number for la in self.layers}:
            for path in self.names(number):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if not keep and not self.layers:
            with contextlib.suppress(FileNotFoundError):
                self.base_descriptor.unlink()

    def reparent_above(self, index: int) -> None:
        """Point the delta above layer ``index`` at layer ``index``'s parent (before the
        layer goes); idempotent."""
        if index + 1 >= len(self.layers):
            return
        child = self.layers[index + 1]
        parent = self.layers[index - 1].descriptor if index > 0 else self._base_descriptor()
        write_atomic(child.descriptor, descriptor(
            cid=read_cid(child.descriptor), parent_cid=read_cid(parent), create_type="seSparse",
            extent=child.file.path.name, capacity=self.capacity, parent_hint=parent.name))

    def drop(self, index: int) -> None:
        """Close layer ``index`` and delete its files (after :meth:`reparent_above`)."""
        layer = self.layers.pop(index)
        layer.file.close()
        for path in self.names(layer.number):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if not self.layers:
            with contextlib.suppress(FileNotFoundError):
                self.base_descriptor.unlink()

    def clear(self) -> None:
        """No snapshot: every delta file goes (leftovers of an unfinished create included)."""
        while self.layers:
            self.drop(len(self.layers) - 1)
        self.prune(())

    # --- I/O -------------------------------------------------------------------------
    def read(self, offset: int, length: int, below: int | None = None) -> bytes:
        """The view through layers ``[0, below)`` (all by default) over the flat file."""
        layers = self.layers if below is None else self.layers[:below]
        if not any(la.file.slots for la in layers):
            return os.pread(self.base_fd, length, offset).ljust(length, b"\0")
        parts = []
        pos, end = offset, offset + length
        while pos < end:
            g = pos // GRAIN
            n = min(end, (g + 1) * GRAIN) - pos
            grain = next((d for la in reversed(layers)
                          if (d := la.file.read_grain(g)) is not None), None)
            if grain is None:
                parts.append(os.pread(self.base_fd, n, pos).ljust(n, b"\0"))
            else:
                lo = pos - g * GRAIN
                parts.append(grain[lo : lo + n])
            pos += n
        return b"".join(parts)

    def write(self, offset: int, data: bytes) -> list[int]:
        """A guest write into the top delta; returns the 4 KiB grains it newly mapped."""
        below = len(self.layers) - 1
        return self.layers[-1].file.write(offset, data, lambda o, n: self.read(o, n, below))

    def merge(self, index: int, grains: Iterable[int] | None = None) -> int:
        """Copy layer ``index``'s grains (all, or those of ``grains``) into its parent;
        idempotent.  Returns the grains copied."""
        layer = self.layers[index].file
        todo = sorted(layer.slots) if grains is None else sorted(set(grains) & set(layer.slots))

        def parent_view(o: int, ln: int) -> bytes:  # what the target's own parent shows
            return self.read(o, ln, index - 1)

        for g in todo:
            data = layer.read_grain(g)
            assert data is not None
            off = g * GRAIN
            n = min(GRAIN, self.capacity - off)
            if index == 0:
                os.pwrite(self.base_fd, data[:n], off)
            else:
                self.layers[index - 1].file.write(off, data[:n], parent_view)
        return len(todo)

    def fsync(self) -> None:
        for la in self.layers:
            la.file.fsync()

    def close(self) -> None:
        for la in self.layers:
            la.file.close()
        self.layers = []
