"""Preflight's data-plane questions, asked ahead and all at once.

Over SSH each datastore question is a round trip to an agent that is still starting when
preflight begins (a python3 start on each host).  So as soon as the handles are open, a
background thread asks each datastore, in one :meth:`Datastore.peek` each and on every
datastore at the same time, for every path the checks will look at (the claim, Bob's
folder and its markers, the disks), then the data paths (:meth:`Datastore.transfer_modes`,
direct mode's probe included); meanwhile the control-plane checks run.  The checks then
read the answers through a :class:`~vmigrate_lib.dataplane.datastore.PeekedFiles`, which
answers as the datastore would.

Until that thread is done it is the only user of the handles: whatever a check asks that
was not peeked waits for it first (:meth:`Lookahead.settle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from ..control.host import VmInfo
from ..dataplane.datastore import Datastore, Files, Peeked, PeekedFiles, TransferModes
from .claim import claim_path
from .context import OWNER_MARKER, Migration
from .destination import pending_marker
from .preflight_model import PreflightContext


def source_paths(m: Migration, vm: VmInfo, name: str) -> tuple[list[str], list[str]]:
    """What preflight stats and reads on source datastore ``name``: the claim (on the
    VM's own datastore) and the disks there."""
    reads = [claim_path(vm)] if name == vm.datastore else []
    return [d.path for d in vm.disks if d.datastore == name], reads


def dest_paths(m: Migration, vm: VmInfo) -> tuple[list[str], list[str]]:
    """What preflight stats and reads on the destination: Bob's folder, its owner marker
    and pending marker, his disks."""
    folder = m.dest_folder
    return ([folder, *(m.dest_disk_path(d) for d in vm.disks)],
            [f"{folder}/{OWNER_MARKER}", pending_marker(folder)])


class Lookahead:
    """The peeks of every datastore handle, then the data paths, on a background thread."""

    def __init__(self, m: Migration, vm: VmInfo, src: dict[str, Datastore],
                 dst: Datastore | None) -> None:
        self.src, self.dst = src, dst
        self._pool = ThreadPoolExecutor(max_workers=len(src) + 2,
                                        thread_name_prefix="vmigrate-preflight")
        jobs: dict[str, tuple[Datastore, Sequence[str], Sequence[str]]] = {
            f"src:{n}": (ds, *source_paths(m, vm, n)) for n, ds in src.items()}
        if dst is not None:
            jobs["dst"] = (dst, *dest_paths(m, vm))
        self._peeks = {key: self._pool.submit(ds.peek, paths, reads)
                       for key, (ds, paths, reads) in jobs.items()}
        self._modes = self._pool.submit(self._transfer_modes)
        self._pool.shutdown(wait=False)

    def _transfer_modes(self) -> dict[str, TransferModes | None]:
        """After every peek (direct mode's probe starts the destination's agent from its
        file, which the destination's own agent start has checked or installed)."""
        for f in self._peeks.values():
            f.exception()  # waits; a failed peek is raised by the check that reads it
        if self.dst is None:
            return {}
        return {n: ds.transfer_modes(self.dst) for n, ds in self.src.items()}

    def settle(self) -> None:
        """Wait until the lookahead no longer uses the handles (its errors are raised by
        the checks that read its answers)."""
        self._modes.exception()

    def files(self, ds: Datastore) -> PeekedFiles:
        """``ds`` as peeked (raising what its peek met)."""
        fut = next((self._peeks[f"src:{n}"] for n, d in self.src.items() if d is ds), None)
        if fut is None and ds is self.dst:
            fut = self._peeks["dst"]
        return PeekedFiles(ds, _result(fut) if fut is not None else {}, self.settle)

    def transfer_modes(self, name: str) -> TransferModes | None:
        """Source datastore ``name``'s data paths to the destination."""
        return self._modes.result().get(name)


def files_of(ctx: PreflightContext, ds: Datastore) -> Files:
    """``ds``'s files as the lookahead found them (the datastore itself without one)."""
    return ctx.ahead.files(ds) if ctx.ahead is not None else ds


def _result(fut: Future[dict[str, Peeked]]) -> dict[str, Peeked]:
    return fut.result()


__all__ = ["Lookahead", "dest_paths", "files_of", "source_paths"]
