"""The handles of disks copied in parallel are opened ahead and kept across cycles.

``sync.parallel_disks`` 2 on a two-disk lab VM (a writing guest, the lab's datastores):
the first disk's stream uses the migration's own handles, the second takes a pair (source
datastore, destination) of its own.  Before, each cycle opened that pair when its copy
began and closed it after, so over SSH every cycle paid one more login-less exec and
python3 start per host, inside the copy.  Now the pair is opened while the snapshot is
taken, kept idle between cycles like the first disk's, closed when its stream failed (the
next cycle opens a fresh one) and when the migration closes.  The counts are taken on the
lab's real datastore objects (opens and closes counted around them, nothing answered in
their place); ``tests/ssh/test_startup_cost.py`` counts the same over real sshd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.labkit import Lab
from vmigrate_lib.dataplane.datastore import Datastore, ExtentWriter
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.sync import start
from vmigrate_lib.errors import AgentError, VmigrateError
from vmigrate_lib.session import close_migration, open_migration

MiB = 1 << 20


class Counted:
    """A real datastore, its close counted; ``refuse_writes`` makes its writer fail."""

    def __init__(self, inner: Datastore, log: list[Counted]) -> None:
        self.inner = inner
        self.closed = 0
        self.refuse_writes = False
        log.append(self)

    def open_writer(self, path: str) -> ExtentWriter:
        if self.refuse_writes:
            raise AgentError("injected: this stream's destination refuses writes", path=path)
        return self.inner.open_writer(path)

    def close(self) -> None:
        self.closed += 1
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _counting(m: Migration, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Counted], list[Counted]]:
    """Every datastore opened from now on, per side, wrapped and logged."""
    srcs: list[Counted] = []
    dsts: list[Counted] = []
    src_open, dst_open = m.source.open_datastore, m.dest.open_datastore
    monkeypatch.setattr(m.source, "open_datastore", lambda name: Counted(src_open(name), srcs))
    monkeypatch.setattr(m.dest, "open_datastore", lambda name: Counted(dst_open(name), dsts))
    return srcs, dsts


def test_the_second_streams_pair_is_opened_once_and_kept(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed and three deltas: one pair for the second disk over all four cycles (before:
    four, one per cycle), the migration's own handles beside it; a failed stream's pair is
    closed and the next cycle opens a fresh one; closing the migration closes the rest."""
    lab = make_lab(disk_sizes=(16 * MiB, 8 * MiB), rate_mb_s=2.0)
    m = open_migration(lab.params(sync={"parallel_disks": 2, "certify": "changed"}))
    m.src_ds(m.vm().disks[0].datastore)  # the migration's own handles, before the counting
    m.dst_ds()
    srcs, dsts = _counting(m, monkeypatch)
    try:
        with m.workspace:
            start(m)
            for _ in range(4):
                rec = run_cycle(m).record
                assert rec["certify"]["result"] == "identical"
                assert [d["key"] for d in rec["disks"]] == [2000, 2001]
            assert (len(srcs), len(dsts)) == (1, 1)  # the second stream's pair, once
            assert srcs[0].closed == dsts[0].closed == 0  # kept between cycles

            dsts[0].refuse_writes = True
            with pytest.raises(VmigrateError):
                run_cycle(m)
            assert srcs[0].closed == dsts[0].closed == 1  # a failed stream's pair: closed
            rec = run_cycle(m, certify="full").record
            assert rec["certify"]["result"] == "identical"
            assert (len(srcs), len(dsts)) == (2, 2)  # a fresh pair for the next cycle
    finally:
        close_migration(m)
    assert [c.closed for c in srcs + dsts] == [1, 1, 1, 1]  # nothing left open, none twice
