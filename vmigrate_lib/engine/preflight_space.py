"""Preflight's storage lines: what each datastore's file system does, the copies already
there, and the room the destination will really allocate.

A thick source disk is created thick on a destination that can (``vmkfstools``), and
a thin one inflates where neither side can skip zeros: the space check counts what
the destination will allocate, not what the source has allocated (issue 11 item 7).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..control.host import DiskInfo
from ..dataplane.datastore import StorageProbe
from ..errors import InsufficientSpace
from ..units import fmt_bytes
from .context import Migration
from .destination import growth, size_mismatch
from .preflight_ahead import files_of
from .preflight_model import Check, PreflightContext

#: Keep this much free on the destination beyond what the copy needs.
SPACE_MARGIN = 0.02


def will_allocate(d: DiskInfo, src_allocated: int, src: StorageProbe | None,
                  dst: StorageProbe | None) -> int:
    """Bytes the destination's copy of ``d`` will take once seeded.

    Thick (zeroedthick, eagerzeroedthick): its capacity (created so, or written in full).
    Thin: what the source has allocated, unless neither side can skip zeros (the
    source reports every area as data without SEEK_DATA, and a destination that cannot
    punch holes writes zeros over whatever of a hole it finds allocated): then its
    capacity, an upper bound the space check may not exceed.  Unknown counts as works."""
    if d.provisioning != "thin":
        return d.capacity
    if src is not None and dst is not None and src.seek_data is False \
            and dst.punch_hole is False:
        return d.capacity
    return src_allocated


def storage(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """What each datastore's file system does, as its agent probed it at start: SEEK_DATA,
    hole punching, vmkfstools (and the agent's Python), one line each; never fails."""
    sides = [(f"[{n}] on {m.params.source.host}", m.src_ds(n))
             for n in dict.fromkeys(d.datastore for d in ctx.vm.disks)]
    sides.append((f"[{ctx.ds.name}] on {m.params.destination.host}", ctx.ds))
    for where, ds in sides:
        probe = ds.storage_probe()
        if probe is not None:
            yield Check("storage", True, f"{where}: {probe.describe()}")


def destination_disks(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """Copies already there have a size the sync can continue from; counts the bytes
    the destination will still allocate (``report.bytes_needed``, :func:`will_allocate`)."""
    needed = 0
    dst_probe = ctx.ds.storage_probe()
    dst_files = files_of(ctx, ctx.ds)
    for d in ctx.vm.disks:
        src = m.src_ds(d.datastore)
        src_stat = files_of(ctx, src).stat(d.path)
        src_alloc = will_allocate(d, src_stat.allocated if src_stat else d.capacity,
                                  src.storage_probe(), dst_probe)
        dst_stat = dst_files.stat(m.dest_disk_path(d)) if ctx.ours_at_dest else None
        if dst_stat is not None and dst_stat.size != d.capacity:
            err = size_mismatch(m, d, dst_stat.size)
            if err is not None:
                yield Check(
                    f"destination disk {d.key}", False,
                    f"{m.dest_disk_path(d)} is {fmt_bytes(dst_stat.size)}, "
                    f"source is {fmt_bytes(d.capacity)}", err, blocks=True,
                )
                return
            yield Check(f"destination disk {d.key}", True,
                        f"{growth(d, dst_stat.size)}: the copy grows and is hash-compared "
                        "next cycle")
        needed += max(0, src_alloc - (dst_stat.allocated if dst_stat else 0))
    ctx.report.bytes_needed = needed


def destination_space(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """Room for what is still to copy, plus :data:`SPACE_MARGIN`."""
    p, needed, name = m.params, ctx.report.bytes_needed, m.dest_datastore_name
    free = ctx.ds.free_space()
    if needed * (1 + SPACE_MARGIN) > free:
        yield Check(
            "destination space", False, f"needs {fmt_bytes(needed)}, {fmt_bytes(free)} free",
            InsufficientSpace(
                f"datastore {name} on {p.destination.host} has {fmt_bytes(free)} free, "
                f"the copy needs {fmt_bytes(needed * (1 + SPACE_MARGIN))}",
                needed=needed, free=free, datastore=name,
            ),
        )
    else:
        yield Check("destination space", True, f"needs {fmt_bytes(needed)}, {fmt_bytes(free)} free")


__all__ = ["SPACE_MARGIN", "destination_disks", "destination_space", "storage", "will_allocate"]
