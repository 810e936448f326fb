"""Preflight's data-plane questions, asked ahead and all at once.

Over SSH each datastore handle is a login and an agent start on its host, and each question
a round trip to that agent.  So background threads open every handle at once (one per
datastore), ask each, in one :meth:`Datastore.peek`, for every path the checks will look
at (the claim, Bob's folder and its markers, the disks), then the data paths
(:meth:`Datastore.transfer_modes`, direct mode's probe included); meanwhile the
control-plane checks run.  The checks read the answers through a
:class:`~vmigrate_lib.dataplane.datastore.PeekedFiles`, which answers as the datastore would.

Until those threads are done they are the only users of the handles: whatever a check asks
that was not peeked waits for them first (:meth:`Lookahead.settle`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from ..control.host import VmInfo
from ..control.vmdkdesc import descriptor_of
from ..dataplane.datastore import Datastore, Files, Peeked, PeekedFiles, TransferModes
from .claim import claim_path
from .context import OWNER_MARKER, Migration
from .destination import pending_marker
from .preflight_model import PreflightContext


def source_paths(vm: VmInfo, name: str) -> tuple[list[str], list[str]]:
    """What preflight stats and reads on source datastore ``name``: the claim (on the
    VM's own datastore), the disks there and their descriptors."""
    reads = [claim_path(vm)] if name == vm.datastore else []
    disks = [d for d in vm.disks if d.datastore == name]
    reads += [desc for d in disks if (desc := descriptor_of(d.path)) is not None]
    return [d.path for d in disks], reads


def dest_paths(m: Migration, vm: VmInfo) -> tuple[list[str], list[str]]:
    """What preflight stats and reads on the destination: Bob's folder, its owner marker
    and pending marker, his disks."""
    folder = m.dest_folder
    return ([folder, *(m.dest_disk_path(d) for d in vm.disks)],
            [f"{folder}/{OWNER_MARKER}", pending_marker(folder)])


Look = tuple[Datastore, dict[str, Peeked]]
T = TypeVar("T")


class Lookahead:
    """Every datastore handle opened (each an SSH login and an agent launched, all hosts at
    once) and peeked, then the data paths, on background threads."""

    def __init__(self, m: Migration, vm: VmInfo, names: Sequence[str], dest: bool) -> None:
        self.m = m
        self._src = {n: _spawn(_look, m.src_ds, n, *source_paths(vm, n)) for n in names}
        self._dst = _spawn(_look, lambda _n: m.dst_ds(), "", *dest_paths(m, vm)) if dest else None
        self._modes = _spawn(self._transfer_modes)

    def _looks(self) -> list[Future[Look]]:
        return [*self._src.values(), *([self._dst] if self._dst is not None else [])]

    def _transfer_modes(self) -> dict[str, TransferModes | None]:
        """After every peek (direct mode's probe starts the destination's agent from its
        file, which the destination's own agent start has checked or installed)."""
        for f in self._looks():
            f.exception()  # waits; a failed open or peek is raised by the check that reads it
        if self._dst is None or self._dst.exception() is not None:
            return {}
        dst = self._dst.result()[0]
        return {n: f.result()[0].transfer_modes(dst) for n, f in self._src.items()
                if f.exception() is None}

    def settle(self) -> None:
        """Wait until the lookahead no longer uses the handles (its errors are raised by
        the checks that read its answers)."""
        self._modes.exception()

    def src_files(self, name: str) -> Files:
        """Source datastore ``name`` as peeked (raising what its opening or peek met)."""
        if name not in self._src:
            self.settle()
            return self.m.src_ds(name)
        ds, peeked = self._src[name].result()
        return PeekedFiles(ds, peeked, self.settle)

    def dst(self) -> Datastore:
        """The destination datastore's handle (raising what opening it met)."""
        if self._dst is None:
            self.settle()
            return self.m.dst_ds()
        return self._dst.result()[0]

    def files(self, ds: Datastore) -> Files:
        """``ds`` as peeked, once settled (what a later check reads)."""
        self.settle()
        for f in self._looks():
            if f.exception() is None and f.result()[0] is ds:
                return PeekedFiles(ds, f.result()[1])
        return ds

    def transfer_modes(self, name: str) -> TransferModes | None:
        """Source datastore ``name``'s data paths to the destination."""
        return self._modes.result().get(name)


def _spawn(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn(*args)`` on a daemon thread: an operator's Ctrl-C during preflight is not held
    up by a login still waiting for its host (the command ends; the thread with it)."""
    fut: Future[T] = Future()

    def run() -> None:
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever reads the answer
            fut.set_exception(exc)

    threading.Thread(target=run, name="vmigrate-preflight", daemon=True).start()
    return fut


def _look(open_ds: Callable[[str], Datastore], name: str, paths: Sequence[str],
          reads: Sequence[str]) -> Look:
    ds = open_ds(name)
    return ds, ds.peek(paths, reads)


def files_of(ctx: PreflightContext, ds: Datastore) -> Files:
    """``ds``'s files as the lookahead found them (the datastore itself without one)."""
    return ctx.ahead.files(ds) if ctx.ahead is not None else ds


__all__ = ["Lookahead", "dest_paths", "files_of", "source_paths"]
