"""Preflight's disk-file line: each disk's descriptor names the flat file vmigrate reads.

The control planes name a disk by its descriptor and vmigrate reads ``<name>-flat.vmdk``
beside it (:mod:`..control.vmdkdesc`).  A descriptor that names another file (a flat file
renamed by hand), a raw device mapping or several extents would have vmigrate read the
wrong bytes or none: refused here, before anything changes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from ..control.host import DiskInfo
from ..control.vmdkdesc import descriptor_of, flat_problem, parse_descriptor
from ..dataplane.datastore import PEEK_LIMIT
from ..errors import UnsupportedDisk, VmigrateError
from .context import Migration
from .preflight_ahead import files_of
from .preflight_model import Check, PreflightContext

#: What an operator does about a descriptor that does not name ``<name>-flat.vmdk``.
HINT = ("with the VM powered off, rename the disk with `vmkfstools -E <old>.vmdk <new>.vmdk`, "
        "which renames the descriptor and its extent together, or move it with Storage "
        "vMotion; an RDM maps a LUN: convert it to a virtual disk first (docs/real-hosts.md)")


def disk_files(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """One line per disk whose descriptor is there: ok when it names the flat file whole.
    No descriptor beside the flat file (vmigrate's lab writes none until a snapshot) is
    said and not refused: the flat file is read as the control plane names it."""
    for d in ctx.vm.disks:
        desc_path = descriptor_of(d.path)
        if desc_path is None:
            continue
        files = files_of(ctx, m.src_ds(d.datastore))
        try:
            st = files.stat(desc_path)
            text = files.read_file(desc_path) if st is not None and st.size <= PEEK_LIMIT \
                else None
        except VmigrateError as exc:
            yield Check(f"disk {d.key} descriptor", False, exc.one_line(), exc)
            continue
        if st is None:
            yield Check(f"disk {d.key} descriptor", True,
                        f"no {posixpath.basename(desc_path)}: reading {d.path} as named")
            continue
        problem = _problem(d, st.size, text)
        if problem is None:
            yield Check(f"disk {d.key} descriptor", True,
                        f"one extent, {posixpath.basename(d.path)}, whole")
            continue
        err = UnsupportedDisk(f"disk {d.key} ({d.label}): descriptor [{d.datastore}] "
                              f"{desc_path}: {problem}", hint=HINT, disk=d.key, path=desc_path)
        yield Check(f"disk {d.key} descriptor", False, problem, err)


def _problem(d: DiskInfo, size: int, text: bytes | None) -> str | None:
    if text is None:
        return f"{size} bytes, not a text descriptor"
    desc = parse_descriptor(text.decode("utf-8", "replace"))
    return flat_problem(desc, posixpath.basename(d.path), d.capacity)


__all__ = ["disk_files"]
