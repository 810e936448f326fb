"""``sync.change_tracking: snapshot-delta``: each cycle copies the kept snapshot's delta.

Issue 12 item 3 (the OneDiff way).  Real lab (guest writing, SEsparse deltas, agents
as processes): every delta cycle takes its snapshot on top of the one the last cycle
kept, reads the frozen delta's grain table through the agent, removes the older
snapshot and copies exactly those grains (read <= 1.1x changed), certified
identical; one vmigrate snapshot stays between cycles; a cycle killed after the
older snapshot was removed leaves none, and the next one hash-compares (a full
certify proves the copy).  What only a real ESXi host shows: VMFS-6's own SEsparse
files and snapshot.remove of a non-top snapshot ("Delete writes disk changes that
occur between the state of the snapshot and the previous disk state to the parent":
vSphere 7.0 Virtual Machine Administration, https://docs.vmware.com/en/VMware-vSphere/
7.0/com.vmware.vsphere.vm_admin.doc/GUID-542CF191-B8DE-42F1-9CCC-D9030491AE25.html);
the reader's formats are checked against QEMU in tests/dataplane/test_delta_reader.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.labkit import Lab
from vmigrate_lib.engine import snapdelta
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.engine.sync import start
from vmigrate_lib.session import close_migration, open_migration

MiB = 1 << 20
SIZES = (8 * MiB, 4 * MiB)


def _open(lab: Lab) -> Migration:
    return open_migration(lab.params(sync={"change_tracking": "snapshot-delta",
                                           "certify": "changed", "parallel_disks": 1}))


def _ours(lab: Lab) -> list[str]:
    return [s.name for s in lab.host().list_snapshots("alice")]


def _disks(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(rec["disks"])


def test_each_cycle_copies_the_frozen_delta_of_the_kept_snapshot(
    make_lab: Callable[..., Lab],
) -> None:
    """Seed then three delta cycles: each disk is planned from the kept snapshot's
    delta (mode tracked, reason names it), the cycle reads and sends at most 1.1x what
    changed, certify finds the changed blocks identical, and exactly one snapshot (the
    cycle's own) stays open; a final full certify proves whole disks.  Before: the
    value snapshot-delta was refused by the params (exit 2)."""
    lab = make_lab(disk_sizes=SIZES, rate_mb_s=1.0)
    m = _open(lab)
    try:
        with m.workspace:
            start(m)
            run_cycle(m)
            mid = m.workspace.state.migration_id
            assert _ours(lab) == [f"vmigrate-{mid}-c1"]
            for n in (2, 3, 4):
                rec = run_cycle(m).record
                for d in _disks(rec):
                    assert d["mode"] == "tracked", d
                    assert "snapshot-delta: grains of" in d["reason"], d
                    assert d["bytes_read"] <= 1.1 * d["bytes_changed"] + 4096, d
                assert rec["bytes_changed"] > 0
                assert rec["certify"]["result"] == "identical"
                assert _ours(lab) == [f"vmigrate-{mid}-c{n}"]
            kept = [r["snapshot"] for r in m.workspace.journal.records("snapshot_kept")]
            assert kept == [f"vmigrate-{mid}-c{n}" for n in (1, 2, 3, 4)]
            merged = list(m.workspace.journal.records("snapshot_consolidated"))
            assert [r["snapshot"] for r in merged] == kept[:3]
            line = {c.name: c for c in run_preflight(m, raise_on_failure=False).checks}
            assert line["snapshots"].ok and line["snapshots"].detail == \
                f"vmigrate-{mid}-c4 kept for snapshot-delta", line["snapshots"]
            proof = run_cycle(m, certify="full", kind="final").record
            assert proof["certify"]["result"] == "identical"
            assert _ours(lab) == []  # the final cycle keeps nothing
    finally:
        close_migration(m)


def test_a_cycle_killed_after_the_older_snapshot_went_hash_compares_next(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kept snapshot is removed, then the cycle dies before its commit: its own
    snapshot is removed too, so nothing says what changed since the last commit; the
    next cycle hash-compares every disk (reason: no snapshot kept) and keeps its
    snapshot again, and the one after is a delta cycle; full certify identical."""
    lab = make_lab(disk_sizes=SIZES, rate_mb_s=1.0)
    m = _open(lab)
    real = snapdelta.release_older

    def die(mm: Migration, snap: Any) -> None:
        real(mm, snap)
        raise KeyboardInterrupt

    try:
        with m.workspace:
            start(m)
            run_cycle(m)
            monkeypatch.setattr(snapdelta, "release_older", die)
            with pytest.raises(BaseException, match="interrupted"):
                run_cycle(m)
            assert _ours(lab) == []
            monkeypatch.setattr(snapdelta, "release_older", real)
            rec = run_cycle(m).record
            assert {(d["mode"], d["reason"]) for d in _disks(rec)} == {
                ("hash", "snapshot-delta: no snapshot kept from the last cycle")}
            rec = run_cycle(m, certify="full").record
            assert {d["mode"] for d in _disks(rec)} == {"tracked"}
            assert rec["certify"]["result"] == "identical"
    finally:
        close_migration(m)


def test_preflight_says_whether_the_host_keeps_a_snapshot_chain(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lab keeps chains: the change-tracking line says how snapshot-delta works.  A
    host without the capability (vsphere's default; stood in for by the lab with
    ``keeps_snapshot_chain`` off) fails the line with the alternatives, before any
    snapshot (before: no line; the first delta cycle would have hash-compared)."""
    from vmigrate_lib.control.lab import LabHost
    from vmigrate_lib.errors import ChangeTrackingOff

    lab = make_lab(disk_sizes=(4 * MiB,), rate_mb_s=0.5)
    for keeps, ok in ((True, True), (False, False)):
        monkeypatch.setattr(LabHost, "keeps_snapshot_chain", keeps)
        m = _open(lab)
        try:
            lines = {c.name: c for c in run_preflight(m, raise_on_failure=False).checks}
        finally:
            close_migration(m)
        line = lines["change tracking"]
        assert line.ok is ok and "snapshot-delta" in line.detail, line
        if not ok:
            assert isinstance(line.error, ChangeTrackingOff)
            assert "sync.change_tracking auto or hash" in line.error.hint
    assert _ours(lab) == []


def test_abandon_removes_the_kept_snapshot(make_lab: Callable[..., Lab]) -> None:
    """``vmigrate abandon`` of a snapshot-delta migration removes the snapshot it kept
    (journal ``snapshot_removed``): Alice does not run on a delta that grows for ever
    (before: the abandon released the claim and left the snapshot)."""
    lab = make_lab(disk_sizes=(4 * MiB,), rate_mb_s=0.5)
    path = lab.write_params(sync={"change_tracking": "snapshot-delta", "certify": "changed"})
    r = lab.cli("sync", "--cycles", "1", "-p", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(_ours(lab)) == 1
    r = lab.cli("abandon", "-p", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert _ours(lab) == []
