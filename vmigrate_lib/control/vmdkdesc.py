"""A base disk's text descriptor: its ``createType`` and extent lines, and whether it names
the flat file vmigrate reads.

Every control plane names a disk by its descriptor (``[ds] alice/alice.vmdk``) and vmigrate
reads the data beside it, ``alice-flat.vmdk``: the name ESXi gives a flat extent (Broadcom
KB 311009, "VMDK and -flat.VMDK files").  The descriptor is what says so: its extent line
``RW <sectors> VMFS "alice-flat.vmdk"`` (VMware Virtual Disk Format 5.0; QEMU block/vmdk.c
``vmdk_parse_extents`` reads ``ACCESS SECTORS TYPE "FILE" [OFFSET]``).  A flat file renamed
by hand (``mv`` instead of ``vmkfstools -E``), a raw device mapping (``createType
vmfsRawDeviceMap``/``vmfsPassthroughRawDeviceMap``, a ``-rdm(p).vmdk`` mapping to a LUN) or
a disk of several extents breaks that guess; :func:`flat_problem` says how.  Pure text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTOR = 512
#: The createType of a flat base disk on ESXi (thin or thick alike), and the hosted
#: products' single flat file, which ESXi hosts also run.
FLAT_TYPES = ("vmfs", "monolithicFlat")
_CREATE_TYPE = re.compile(r'^\s*createType\s*=\s*"([^"]*)"', re.M)
_EXTENT = re.compile(r'^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)\s+"([^"\r\n]+)"(?:\s+(\d+))?\s*$',
                     re.M)


@dataclass(frozen=True)
class ExtentLine:
    access: str  #: RW | RDONLY | NOACCESS
    sectors: int
    kind: str  #: VMFS | FLAT | VMFSRDM | VMFSRAW | VMFSSPARSE | SESPARSE | ...
    filename: str  #: relative to the descriptor's folder
    offset: int | None = None  #: FLAT extents: sectors into the file


@dataclass(frozen=True)
class Descriptor:
    create_type: str
    extents: tuple[ExtentLine, ...]


def parse_descriptor(text: str) -> Descriptor:
    """The createType and the extent lines of a text descriptor ("" and none if absent)."""
    kind = _CREATE_TYPE.search(text)
    extents = tuple(ExtentLine(m[1], int(m[2]), m[3], m[4], int(m[5]) if m[5] else None)
                    for m in _EXTENT.finditer(text))
    return Descriptor(kind[1] if kind else "", extents)


def flat_problem(desc: Descriptor, flat_name: str, capacity: int) -> str | None:
    """Why reading ``flat_name`` (a basename) would not read this disk's ``capacity``
    bytes, or None when the descriptor names exactly that file, whole, and nothing else."""
    if desc.create_type.lower() in ("vmfsrawdevicemap", "vmfspassthroughrawdevicemap"):
        return f"a raw device mapping (createType {desc.create_type}): a LUN, not a file"
    if desc.create_type not in FLAT_TYPES:
        return (f"createType {desc.create_type or '(none)'!r}, not a flat disk "
                f"({' or '.join(FLAT_TYPES)})")
    if len(desc.extents) != 1:
        return f"{len(desc.extents)} extent lines, not one"
    ext = desc.extents[0]
    if ext.filename != flat_name:
        return f"its extent is {ext.filename!r}, not {flat_name!r}"
    if ext.access != "RW" or ext.offset not in (None, 0):
        return f"its extent line is {ext.access} at offset {ext.offset}, not RW from 0"
    if ext.sectors * SECTOR != capacity:
        return (f"its extent has {ext.sectors} sectors ({ext.sectors * SECTOR} bytes), the "
                f"VM's disk {capacity} bytes")
    return None


def descriptor_of(flat_path: str) -> str | None:
    """``folder/disk-flat.vmdk`` -> ``folder/disk.vmdk`` (None: not a flat file's name)."""
    if not flat_path.endswith("-flat.vmdk"):
        return None
    return flat_path[: -len("-flat.vmdk")] + ".vmdk"


__all__ = ["Descriptor", "ExtentLine", "descriptor_of", "flat_problem", "parse_descriptor"]
