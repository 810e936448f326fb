"""Source disks that change between cycles: grown, shrunk (refused), added, removed."""

from __future__ import annotations

import json
import time

import pytest

from tests.engine.refusals import run_and_check_unchanged
from tests.fsproof import files_equal
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.errors import ParameterError, SnapshotError
from vmigrate_lib.lab.verify import verify_copy
from vmigrate_lib.session import close_migration, open_migration

MiB = 1 << 20
FILES = {2000: "alice-flat.vmdk", 2001: "alice_1-flat.vmdk", 2002: "alice_2-flat.vmdk"}




def _wait_writes(lab, more: int) -> None:
    host = lab.host()
    st = host.guest_status("alice")
    assert st is not None
    target = st["writes"] + more
    deadline = time.monotonic() + 20
    while (st := host.guest_status("alice")) is not None and st["writes"] < target:
        assert time.monotonic() < deadline, "guest does not write"
        time.sleep(0.05)


def _final_and_compare(lab, keys: tuple[int, ...]) -> None:
    """Stop Alice (clean ack maps), final cycle, then byte-compare and check every ack."""
    lab.stop_guest()
    m = open_migration(lab.params())
    try:
        with m.workspace:
            final = run_cycle(m, "final")
        assert final.record["certify"]["result"] == "identical"
    finally:
        close_migration(m)
    host = lab.host()
    for key in keys:
        src = lab.ds_dir("esx-a") / "alice" / FILES[key]
        dst = lab.ds_dir("esx-b") / "alice" / FILES[key]
        assert src.stat().st_size == dst.stat().st_size
        assert files_equal(src, dst), f"disk {key} differs"
        report = verify_copy(dst, host.ack_path("alice", key))
        assert report.ok, report.problems()


def test_disk_grown_while_running_is_grown_hashed_then_tracked(make_lab) -> None:
    lab = make_lab(rate_mb_s=4.0)
    host = lab.host()
    m = open_migration(lab.params(sync={"certify": "full"}))
    try:
        with m.workspace:
            run_cycles(m, 2, interval=0.2)
            old_epoch = str(m.workspace.state.disks[2001].change_id).split("/")[0]
            vm = host.resize_disk("alice", 2001, 48 * MiB)  # live, through the guest
            assert {d.key: d.capacity for d in vm.disks} == {2000: 64 * MiB, 2001: 48 * MiB}
            _wait_writes(lab, 200)  # the guest writes over the whole new size
            grown = run_cycle(m)
            modes = {d["key"]: (d["mode"], d["reason"]) for d in grown.record["disks"]}
            assert modes[2000][0] == "hash"  # the VM was extended: CBT not trusted (issue 11 #8)
            assert "extended" in modes[2000][1], modes
            assert modes[2001] == ("hash", f"disk grew from {32 * MiB} to {48 * MiB} bytes "
                                           "(32.0 MiB -> 48.0 MiB)"), modes
            assert grown.record["certify"]["result"] == "identical"
            assert set(grown.certify) == {2000, 2001}
            dst = lab.ds_dir("esx-b") / "alice" / "alice_1-flat.vmdk"
            assert dst.stat().st_size == 48 * MiB
            ev = list(m.workspace.journal.records("disk_grown"))
            assert [(e["disk"], e["dest_size"], e["capacity"]) for e in ev] == \
                [(2001, 32 * MiB, 48 * MiB)]
            ds = m.workspace.state.disks[2001]
            assert ds.capacity == 48 * MiB and ds.recheck is None
            assert ds.change_id is not None and ds.change_id.split("/")[0] != old_epoch  # CBT restarted in a new epoch
            _wait_writes(lab, 100)
            again = run_cycle(m)
            assert {d["key"]: d["mode"] for d in again.record["disks"]} == \
                {2000: "tracked", 2001: "tracked"}
            assert again.record["certify"]["result"] == "identical"

            # shrinking is refused by the lab, and so is a resize under a snapshot
            with pytest.raises(ParameterError, match="cannot shrink"):
                host.resize_disk("alice", 2001, 16 * MiB)
            snap = host.create_snapshot("alice", "vmigrate-test-hold")
            try:
                with pytest.raises(SnapshotError, match="snapshot"):
                    host.resize_disk("alice", 2000, 128 * MiB)
            finally:
                host.remove_snapshot("alice", snap.id)
            assert {d.capacity for d in host.find_vm("alice").disks} == {64 * MiB, 48 * MiB}
    finally:
        close_migration(m)
    _final_and_compare(lab, (2000, 2001))


def test_disk_grown_while_off_via_cli(make_lab) -> None:
    lab = make_lab(power_on=False)
    params = lab.write_params()
    assert lab.cli("sync", "-p", str(params)).returncode == 0
    lab.host().resize_disk("alice", 2000, 96 * MiB)
    pre = lab.cli("preflight", "-p", str(params))
    assert pre.returncode == 0, pre.stderr
    assert "disk grew from" in pre.stdout
    r = lab.cli("sync", "-p", str(params))
    assert r.returncode == 0, r.stderr
    ws = lab.workdir / "ws"
    recs = [json.loads(line) for line in (ws / "journal.jsonl").read_text().splitlines()]
    cycle = [x for x in recs if x["type"] == "cycle"][-1]
    # 2000 grew; 2001 too is hash-compared: the VM was extended since the last cycle
    assert {d["key"]: d["mode"] for d in cycle["disks"]} == {2000: "hash", 2001: "hash"}
    assert any(x["type"] == "disk_grown" for x in recs)
    for key in (2000, 2001):
        src = lab.ds_dir("esx-a") / "alice" / FILES[key]
        assert files_equal(src, lab.ds_dir("esx-b") / "alice" / FILES[key])


def test_copy_larger_than_source_is_refused_and_nothing_changes(make_lab) -> None:
    lab = make_lab(power_on=False)
    params = lab.write_params()
    assert lab.cli("sync", "-p", str(params)).returncode == 0
    dst = lab.ds_dir("esx-b") / "alice" / "alice_1-flat.vmdk"
    with open(dst, "r+b") as f:  # as if the source had shrunk below its copy
        f.truncate(40 * MiB)
    line = run_and_check_unchanged(lab, "sync", "-p", str(params))
    assert "larger than its source" in line and "alice_1-flat.vmdk" in line


def test_disk_added_between_cycles_is_seeded(make_lab) -> None:
    lab = make_lab(rate_mb_s=4.0)
    host = lab.host()
    m = open_migration(lab.params(sync={"certify": "full"}))
    try:
        with m.workspace:
            run_cycles(m, 2, interval=0.2)
            added = host.add_disk("alice", 16 * MiB)  # hot-add while the guest writes
            assert added.key == 2002 and added.path == "alice/alice_2-flat.vmdk"
            _wait_writes(lab, 200)
            out = run_cycle(m)
            modes = {d["key"]: d["mode"] for d in out.record["disks"]}
            # the others are hash-compared: the VM was reconfigured (issue 11 item 8)
            assert modes == {2000: "hash", 2001: "hash", 2002: "full"}
            assert out.record["certify"]["result"] == "identical"
            assert (lab.ds_dir("esx-b") / "alice" / "alice_2-flat.vmdk").stat().st_size == 16 * MiB
            _wait_writes(lab, 100)
            nxt = run_cycle(m)
            assert {d["mode"] for d in nxt.record["disks"]} == {"tracked"}
    finally:
        close_migration(m)
    _final_and_compare(lab, (2000, 2001, 2002))
