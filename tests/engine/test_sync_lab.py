"""Differential sync of a running lab VM: seed, deltas, fallback, certify, repair."""

from __future__ import annotations

import json
import os

import pytest

from tests.fsproof import files_equal
from vmigrate_lib.control.host import VMIGRATE_SNAPSHOT_PREFIX
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.errors import CertifyMismatch
from vmigrate_lib.lab.verify import verify_copy
from vmigrate_lib.session import close_migration, open_migration

MiB = 1 << 20




def test_seed_and_deltas_while_guest_writes_then_identical(make_lab) -> None:
    lab = make_lab(rate_mb_s=4.0)
    m = open_migration(lab.params(sync={"certify": "full"}))
    try:
        with m.workspace:
            outcomes = run_cycles(m, 4, interval=0.3)
        kinds = [o.record["kind"] for o in outcomes]
        assert kinds == ["seed", "delta", "delta", "delta"]
        for o in outcomes:
            # certify compared every disk whole against the frozen snapshot point
            assert o.record["certify"]["result"] == "identical"
            assert set(o.certify) == {2000, 2001}
        deltas = [o.record for o in outcomes[1:]]
        assert all(d["disks"][0]["mode"] == "tracked" for d in deltas)
        assert all(0 < d["bytes_changed"] < outcomes[0].record["bytes_changed"] for d in deltas)
        # a tracked delta reads only what changed
        assert all(d["bytes_read"] <= 1.1 * d["bytes_changed"] for d in deltas)
        assert not [s for s in m.source.list_snapshots("alice")]
        # the journal holds one record per cycle with its phases
        cycles = list(m.workspace.journal.records("cycle"))
        assert [c["number"] for c in cycles] == [1, 2, 3, 4]
        assert {"snapshot", "query", "copy", "certify", "cleanup"} <= set(cycles[-1]["phases"])
    finally:
        close_migration(m)

    # stop Alice (flush), run the final cycle, then prove it independently of our hashing
    lab.stop_guest()
    m = open_migration(lab.params())
    try:
        with m.workspace:
            final = run_cycle(m, "final")
        assert final.record["kind"] == "final"
    finally:
        close_migration(m)
    host = lab.host()
    for key, name in ((2000, "alice-flat.vmdk"), (2001, "alice_1-flat.vmdk")):
        src = lab.ds_dir("esx-a") / "alice" / name
        dst = lab.ds_dir("esx-b") / "alice" / name
        assert files_equal(src, dst)
        report = verify_copy(dst, host.ack_path("alice", key))
        assert report.ok, report.problems()
        assert report.acked > 0


def test_hash_compare_after_change_id_reset(make_lab) -> None:
    lab = make_lab()
    m = open_migration(lab.params())
    try:
        with m.workspace:
            run_cycles(m, 2)
            lab.host().reset_change_tracking("alice")
            out = run_cycle(m)
        modes = {d["key"]: d["mode"] for d in out.record["disks"]}
        assert modes == {2000: "hash", 2001: "hash"}
        assert out.record["certify"]["result"] == "identical"
        events = [r["type"] for r in m.workspace.journal.records()]
        assert "change_id_invalid" in events
        # after the fallback, the new epoch's change id is tracked again
        with m.workspace:
            again = run_cycle(m)
        assert {d["mode"] for d in again.record["disks"]} == {"tracked"}
    finally:
        close_migration(m)


def test_certify_lists_mismatch_and_repairs_on_request(make_lab) -> None:
    lab = make_lab(power_on=False)
    m = open_migration(lab.params(sync={"certify": "none"}))
    try:
        with m.workspace:
            run_cycles(m, 1)
        dst = lab.ds_dir("esx-b") / "alice" / "alice-flat.vmdk"

        def corrupt() -> None:  # silent corruption on the destination: bit rot moves no
            st = os.stat(dst)  # mtime (a write that does is caught before: test_dest_modified)
            with open(dst, "r+b") as f:
                f.seek(5 * MiB + 123)
                f.write(b"\xff" * 100)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))

        corrupt()
        with m.workspace:
            fixed = run_cycle(m, certify="full", repair=True)
        assert fixed.record["certify"]["result"] == "identical"
        assert fixed.record["certify"]["repaired"] == [2000]

        corrupt()
        with m.workspace, pytest.raises(CertifyMismatch) as exc:
            run_cycle(m, certify="full")
        assert exc.value.fields["disks"] == [2000]
        assert exc.value.fields["mismatches"][0][0] == 5 * MiB
        # the disk is no longer trusted: the next cycle hash-compares it and mends it
        with m.workspace:
            healed = run_cycle(m, certify="full")
        modes = {d["key"]: d["mode"] for d in healed.record["disks"]}
        assert modes == {2000: "hash", 2001: "tracked"}
        assert healed.record["certify"]["result"] == "identical"
        src = lab.ds_dir("esx-a") / "alice" / "alice-flat.vmdk"
        assert files_equal(src, dst)
    finally:
        close_migration(m)


def test_seed_writes_sparse_and_skips_zero_blocks(make_lab) -> None:
    lab = make_lab(disk_sizes=(256 * MiB,), fill=0.1, power_on=False)
    m = open_migration(lab.params())
    try:
        with m.workspace:
            out = run_cycles(m, 1)[0]
    finally:
        close_migration(m)
    src = lab.ds_dir("esx-a") / "alice" / "alice-flat.vmdk"
    dst = lab.ds_dir("esx-b") / "alice" / "alice-flat.vmdk"
    assert os.stat(dst).st_size == 256 * MiB
    alloc_src = os.stat(src).st_blocks * 512
    alloc_dst = os.stat(dst).st_blocks * 512
    assert alloc_dst <= alloc_src + MiB  # thin stays thin
    assert out.record["bytes_read"] <= alloc_src + MiB
    assert files_equal(src, dst)


def test_state_survives_between_processes(make_lab) -> None:
    lab = make_lab(power_on=False)
    params = lab.write_params()
    r1 = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r1.returncode == 0, r1.stderr
    r2 = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r2.returncode == 0, r2.stderr
    state = json.loads((lab.workdir / "ws" / "state.json").read_text())
    assert state["cycles"] == 2 and state["in_progress"] is None
    status = lab.cli("status", "-p", str(params))
    assert "seed" in status.stdout and "delta" in status.stdout
    snaps = lab.host().list_snapshots("alice")
    assert not [s for s in snaps if s.name.startswith(VMIGRATE_SNAPSHOT_PREFIX)]
