"""A migration in progress: the two hosts, their datastores, the workspace, the reporter.

The engine receives hosts already built (see :mod:`vmigrate_lib.session`), so
it never knows whether they are lab folders, ESXi over SSH or vCenter.
"""

from __future__ import annotations

import posixpath
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..control.host import DiskInfo, Host, VmInfo
from ..dataplane.datastore import Datastore
from ..params import MigrationParams
from .progress import Reporter
from .workspace import Workspace

OWNER_MARKER = ".vmigrate-owner.json"


@dataclass
class Migration:
    params: MigrationParams
    source: Host
    dest: Host
    workspace: Workspace
    reporter: Reporter = field(default_factory=Reporter)
    _src_ds: dict[str, Datastore] = field(default_factory=dict)
    _dst_ds: Datastore | None = None
    #: idle handle pairs (source datastore, destination) of the streams that copy disks in
    #: parallel beside the first, by source datastore name (see :meth:`stream_pair`)
    _spare_pairs: dict[str, list[tuple[Datastore, Datastore]]] = field(default_factory=dict)
    _spare_lock: threading.Lock = field(default_factory=threading.Lock)
    #: events of pairs closed after a failed stream, until :meth:`take_events` hands them out
    _closed_events: list[dict[str, Any]] = field(default_factory=list)

    # --- names --------------------------------------------------------------------
    @property
    def dest_datastore_name(self) -> str:
        if self.params.destination.datastore:
            return self.params.destination.datastore
        state = self.workspace.current
        stored = state.dest.get("datastore") if state is not None else None
        if stored:
            return str(stored)
        names = self.dest.datastores()
        return names[0] if names else ""

    @property
    def dest_folder(self) -> str:
        return self.params.target_name

    def dest_disk_path(self, disk: DiskInfo) -> str:
        """Bob's copy of one of Alice's disks, in Bob's folder, renamed after him."""
        base = posixpath.basename(disk.path)
        if self.params.target_name != self.params.vm and base.startswith(self.params.vm):
            base = self.params.target_name + base[len(self.params.vm) :]
        return f"{self.dest_folder}/{base}"

    # --- data plane handles ---------------------------------------------------------------
    def src_ds(self, name: str) -> Datastore:
        if name not in self._src_ds:
            self._src_ds[name] = self.source.open_datastore(name)
        return self._src_ds[name]

    def dst_ds(self) -> Datastore:
        if self._dst_ds is None:
            self._dst_ds = self.dest.open_datastore(self.dest_datastore_name)
        return self._dst_ds

    def stream_pair(self, name: str) -> tuple[Datastore, Datastore]:
        """A handle pair (source datastore ``name``, destination) for one more disk copied
        beside the first (each stream its own agents: an agent serves one stream at a
        time): an idle pair opened ahead or left by an earlier copy, else a new one.  Give
        it back with :meth:`stream_done`."""
        with self._spare_lock:
            free = self._spare_pairs.get(name)
            if free:
                return free.pop()
        return self._open_pair(name)

    def stream_done(self, name: str, pair: tuple[Datastore, Datastore], ok: bool) -> None:
        """``pair`` is idle again: kept for the next stream or cycle of this migration, as
        the first disk's handles are (its agents stay up: over SSH no login, exec and python
        start again); closed when its stream failed (the next one opens a fresh pair)."""
        if not ok:
            with self._spare_lock:
                self._closed_events += _pair_events(pair)
            _close_pair(pair)
            return
        with self._spare_lock:
            self._spare_pairs.setdefault(name, []).append(pair)

    def open_streams_ahead(self, disks: Sequence[DiskInfo]) -> None:
        """Open now the pairs a parallel copy of ``disks`` will take (the first disk uses
        this migration's own handles), so that their agents start while the snapshot is
        taken rather than when the copy begins.  Opening launches without waiting (over
        SSH: :meth:`SshTransport.launch`); a failure is kept for the stream that uses it."""
        workers = max(1, min(self.params.sync.parallel_disks, len(disks)))
        want = Counter(d.datastore for d in disks[1:workers])
        for name, count in want.items():
            with self._spare_lock:
                have = len(self._spare_pairs.get(name, []))
            for _ in range(count - have):
                self.stream_done(name, self._open_pair(name), ok=True)

    def _open_pair(self, name: str) -> tuple[Datastore, Datastore]:
        src = self.source.open_datastore(name)
        try:
            return src, self.dest.open_datastore(self.dest_datastore_name)
        except BaseException:
            src.close()
            raise

    def take_events(self) -> list[dict[str, Any]]:
        """The data plane's events since the last call (reconnects, resumed streams, the
        direct-mode decision: :meth:`Datastore.take_events`) from every handle this
        migration holds or held, each with its side and datastore: the cycle journals them."""
        with self._spare_lock:
            taken, self._closed_events = self._closed_events, []
            spares = [p for free in self._spare_pairs.values() for p in free]
        for ds in self._src_ds.values():
            taken += _tagged("source", ds)
        if self._dst_ds is not None:
            taken += _tagged("destination", self._dst_ds)
        for pair in spares:
            taken += _pair_events(pair)
        return taken

    def vm(self) -> VmInfo:
        return self.source.find_vm(self.params.vm)

    def identity(self) -> dict[str, Any]:
        """What ties a workspace to one migration (checked on every run)."""
        return {
            "vm": self.params.vm,
            "source_host": self.params.source.host,
            "dest_host": self.params.destination.host,
            "dest_name": self.params.target_name,
        }

    def close(self) -> None:
        with self._spare_lock:
            pairs = [p for free in self._spare_pairs.values() for p in free]
            self._spare_pairs.clear()
        for pair in pairs:
            _close_pair(pair)
        for ds in self._src_ds.values():
            ds.close()
        self._src_ds.clear()
        if self._dst_ds is not None:
            self._dst_ds.close()
            self._dst_ds = None

    def __enter__(self) -> Migration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_pair(pair: tuple[Datastore, Datastore]) -> None:
    try:
        pair[1].close()
    finally:
        pair[0].close()


def _tagged(side: str, ds: Datastore, **extra: str) -> list[dict[str, Any]]:
    """``ds``'s events since the last call, each with its side and datastore."""
    return [{"side": side, "datastore": ds.name, **extra, **e} for e in ds.take_events()]


def _pair_events(pair: tuple[Datastore, Datastore]) -> list[dict[str, Any]]:
    return [*_tagged("source", pair[0], stream="parallel"),
            *_tagged("destination", pair[1], stream="parallel")]
