"""Hash-compare cycles remember the destination's digests (issue 12 item 3, ``hash`` mode).

In the real lab (guest writing, agents as processes): a cycle whose destination
digests were remembered by the last committed cycle reads only the source, counted
on the destination datastore itself; a certify re-reads the destination; a map that
was edited, or made by a cycle that never committed, is not used.  What only a real
ESXi host would show: the digest speed of its python3 on VMFS (the bench's figure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from tests.labkit import Lab
from vmigrate_lib.dataplane.datastore import BlockDigest, Chunk, Datastore, ExtentWriter
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.sync import start
from vmigrate_lib.errors import AgentError, VmigrateError
from vmigrate_lib.extents import Extent
from vmigrate_lib.session import close_migration, open_migration

MiB = 1 << 20
SIZES = (16 * MiB, 8 * MiB)


class CountingDatastore:
    """The destination's datastore, counting every byte digested or read on it."""

    def __init__(self, inner: Datastore) -> None:
        self.inner = inner
        self.hashed = 0
        self.read = 0
        self.fail_writes = False

    def hash_blocks(self, path: str, block_size: int, algorithm: str,
                    extents: Iterable[Extent] | None = None) -> Iterator[BlockDigest]:
        for d in self.inner.hash_blocks(path, block_size, algorithm, extents):
            self.hashed += d.length
            yield d

    def read_extents(self, path: str, extents: Iterable[Extent]) -> Iterator[Chunk]:
        for c in self.inner.read_extents(path, extents):
            self.read += c.length
            yield c

    def open_writer(self, path: str) -> ExtentWriter:
        if self.fail_writes:
            raise AgentError("injected: the destination refuses writes", path=path)
        return self.inner.open_writer(path)

    def reset(self) -> None:
        self.hashed = self.read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _open(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> tuple[Migration, CountingDatastore]:
    m = open_migration(lab.params(sync={"change_tracking": "hash", "certify": "none",
                                        "parallel_disks": 1}))
    counting = CountingDatastore(m.dst_ds())
    monkeypatch.setattr(m, "dst_ds", lambda: counting)
    return m, counting


def _modes(rec: dict[str, Any]) -> dict[int, tuple[str, str]]:
    return {d["key"]: (d["mode"], d["reason"]) for d in rec["disks"]}


def test_a_hash_cycle_reads_only_the_source_once_digests_are_remembered(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed, then hash cycles on a writing guest: the first hash cycle reads the whole
    destination (nothing remembered yet, journaled), the next reads 0 bytes of it and
    still copies what changed; a full certify then re-reads it and finds the copy
    identical.  Before: every hash cycle digested the whole destination (24 MiB here)."""
    lab = make_lab(disk_sizes=SIZES, rate_mb_s=2.0)
    m, dst = _open(lab, monkeypatch)
    try:
        with m.workspace:
            start(m)
            run_cycle(m)  # seed
            dst.reset()
            first = run_cycle(m)
            assert {mode for mode, _ in _modes(first.record).values()} == {"hash"}
            assert dst.hashed == sum(SIZES)
            unused = list(m.workspace.journal.records("digest_map_unused"))
            assert {r["disk"] for r in unused} == {2000, 2001}
            assert "no destination digests remembered" in unused[0]["reason"]
            for _ in range(2):
                dst.reset()
                out = run_cycle(m)
                assert dst.hashed == 0 and dst.read == 0, (dst.hashed, dst.read)
                modes = _modes(out.record)
                assert all("remembered digests" in why for _, why in modes.values()), modes
                assert sum(d["bytes_changed"] for d in out.record["disks"]) > 0
                assert sum(d["bytes_read"] for d in out.record["disks"]) < 2 * sum(SIZES)
            dst.reset()
            proof = run_cycle(m, certify="full")
            assert proof.record["certify"]["result"] == "identical"
            assert dst.hashed >= sum(SIZES)  # the certify read the destination again
    finally:
        close_migration(m)


def test_an_edited_map_is_not_used(make_lab: Callable[..., Lab],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte of a remembered digest changed behind vmigrate's back: the map's SHA-256
    no longer matches, the cycle says so in the journal and reads the destination, and
    a full certify finds the copy identical (a trusted bad map would have skipped or
    re-sent that block unseen)."""
    lab = make_lab(disk_sizes=SIZES, rate_mb_s=2.0)
    m, dst = _open(lab, monkeypatch)
    try:
        with m.workspace:
            start(m)
            run_cycle(m)
            run_cycle(m)
            path = m.workspace.digests_dir / "disk-2000.digests"
            raw = bytearray(path.read_bytes())
            raw[-1] ^= 0xFF
            path.write_bytes(bytes(raw))
            dst.reset()
            run_cycle(m, certify="full")
            reasons = [r["reason"] for r in m.workspace.journal.records("digest_map_unused")
                       if r["disk"] == 2000]
            assert "does not match its SHA-256" in reasons[-1]
            assert dst.hashed >= 2 * SIZES[0] + SIZES[1]  # disk 2000 compared and certified
    finally:
        close_migration(m)


def test_a_map_from_a_cycle_that_never_committed_is_not_used(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hash cycle remembers the source's digests before it copies; when that copy
    fails the cycle is not committed, and the next cycle must not trust the map (the
    destination holds neither the old nor the new content everywhere): it reads the
    destination again, and a full certify proves the result."""
    lab = make_lab(disk_sizes=SIZES, rate_mb_s=2.0)
    m, dst = _open(lab, monkeypatch)
    try:
        with m.workspace:
            start(m)
            run_cycle(m)
            run_cycle(m)
            dst.fail_writes = True
            with pytest.raises(VmigrateError):
                run_cycle(m)
            dst.fail_writes = False
            dst.reset()
            out = run_cycle(m, certify="full")
            assert out.record["certify"]["result"] == "identical"
            reasons = [r["reason"] for r in m.workspace.journal.records("digest_map_unused")]
            assert any("last committed by cycle" in r for r in reasons), reasons
            assert dst.hashed >= 2 * SIZES[0]
    finally:
        close_migration(m)
