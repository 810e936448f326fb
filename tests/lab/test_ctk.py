"""Change tracking: exact extents between snapshots, epochs, allocated areas, speed."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.control.host import ALL_ALLOCATED, CBT_GRAIN
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.errors import ChangeIdInvalid
from vmigrate_lib.extents import Extent, from_blocks
from vmigrate_lib.lab.blockfmt import make_block
from vmigrate_lib.lab.ctk import ChangeTracker
from vmigrate_lib.lab.machine import VmMachine

KEY = 2000


def write_grains(host: LabHost, vm: str, grains: list[int], seq: int = 10_000) -> None:
    """Write one 4 KiB block inside each grain of disk 2000 (VM off: files directly)."""
    m = VmMachine.open(host.handle(vm).loc.config_path)
    try:
        disk = m.disks[0]
        for i, g in enumerate(grains):
            index = g * CBT_GRAIN // 4096 + 3
            disk.write(index * 4096, make_block(KEY, 4096, index, seq + i))
    finally:
        m.close()


def changed(host: LabHost, vm: str, snap_name: str, since: str) -> list[Extent]:
    snap = next(s for s in host.list_snapshots(vm) if s.name == snap_name)
    return list(host.query_changed_areas(vm, snap, KEY, since))


def test_query_is_exact_between_snapshots(host_a: LabHost, alice_off: str) -> None:
    vm = alice_off
    s0 = host_a.create_snapshot(vm, "vmigrate-0")
    epoch = s0.change_ids[KEY].split("/")[0]
    host_a.remove_snapshot(vm, s0.id)

    first = [3, 4, 17, 100, 101, 102, 200]
    write_grains(host_a, vm, first)
    s1 = host_a.create_snapshot(vm, "vmigrate-1")
    assert changed(host_a, vm, "vmigrate-1", s0.change_ids[KEY]) == from_blocks(first, CBT_GRAIN)
    # writes under the snapshot go to the delta and are not part of s1
    second = [4, 50, 201, 255]
    write_grains(host_a, vm, second, seq=20_000)
    assert changed(host_a, vm, "vmigrate-1", s0.change_ids[KEY]) == from_blocks(first, CBT_GRAIN)
    host_a.remove_snapshot(vm, s1.id)

    s2 = host_a.create_snapshot(vm, "vmigrate-2")
    assert changed(host_a, vm, "vmigrate-2", s1.change_ids[KEY]) == from_blocks(second, CBT_GRAIN)
    both = from_blocks(set(first) | set(second), CBT_GRAIN)
    assert changed(host_a, vm, "vmigrate-2", s0.change_ids[KEY]) == both
    # an empty interval is empty, not an error
    assert changed(host_a, vm, "vmigrate-2", s2.change_ids[KEY]) == []
    # since gen 0 of the epoch = everything written while tracking was on (prefill too)
    everything = set(_split(changed(host_a, vm, "vmigrate-2", f"{epoch}/0")))
    assert set(_split(both)) <= everything


def _split(extents: list[Extent]) -> list[Extent]:
    return [Extent(s, CBT_GRAIN) for e in extents for s in range(e.start, e.end, CBT_GRAIN)]


def test_bad_change_ids_are_rejected(host_a: LabHost, alice_off: str) -> None:
    vm = alice_off
    s1 = host_a.create_snapshot(vm, "vmigrate-1")
    host_a.remove_snapshot(vm, s1.id)
    s2 = host_a.create_snapshot(vm, "vmigrate-2")
    for bad in (
        "garbage",
        "x/1",
        f"{s1.change_ids[KEY]}0",
        "0b8a2c6e-4c5d-4c47-9f43-1f1b7d3e0a11/1",
    ):
        with pytest.raises(ChangeIdInvalid):
            changed(host_a, vm, "vmigrate-2", bad)
    host_a.remove_snapshot(vm, s2.id)

    host_a.reset_change_tracking(vm)
    s3 = host_a.create_snapshot(vm, "vmigrate-3")
    with pytest.raises(ChangeIdInvalid) as info:
        changed(host_a, vm, "vmigrate-3", s2.change_ids[KEY])
    assert "epoch" in str(info.value)
    assert s3.change_ids[KEY].split("/")[0] != s2.change_ids[KEY].split("/")[0]


def test_all_allocated_areas(host_a: LabHost, alice_off: str) -> None:
    vm = alice_off
    write_grains(host_a, vm, [250])
    snap = host_a.create_snapshot(vm, "vmigrate-1")
    areas = changed(host_a, vm, "vmigrate-1", ALL_ALLOCATED)
    flat = Path(host_a.vm_dir(vm)) / "alice-flat.vmdk"
    assert areas and all(e.start % CBT_GRAIN == 0 and e.length % CBT_GRAIN == 0 for e in areas)
    assert Extent(250 * CBT_GRAIN, CBT_GRAIN) in _split(areas)
    allocated = sum(e.length for e in areas)
    assert allocated >= flat.stat().st_blocks * 512 // 2  # prefill: ~25% of the disk
    assert allocated < flat.stat().st_size
    host_a.remove_snapshot(vm, snap.id)


def test_query_of_a_64_gib_map(tmp_path: Path, record_property: Any) -> None:
    """A 64 GiB map (1 Mi grains, 50 000 marked) answers exactly the marked grains.
    The time is recorded as a figure, not asserted: a shared runner's load would
    make a bound flaky (bench/ holds the figures)."""
    capacity = 64 << 30
    ctk = ChangeTracker.create(tmp_path / "big-ctk.bin", capacity)
    try:
        assert ctk.grains == 1 << 20
        rng = random.Random(7)
        grains = sorted(rng.sample(range(ctk.grains), 50_000))
        ctk.mark_grains(grains)
        snap = ctk.advance()
        start = time.perf_counter()
        out = ctk.changed(snap, f"{ctk.epoch}/0", capacity)
        elapsed = time.perf_counter() - start
        assert out == from_blocks(grains, CBT_GRAIN)
        record_property("ctk_64gib_query_s", round(elapsed, 3))
    finally:
        ctk.close()


def test_tracking_off_then_enabled(host_a: LabHost, lab_root: Path) -> None:
    from vmigrate_lib.lab.layout import LabLayout
    from vmigrate_lib.lab.lifecycle import create_vm

    create_vm(LabLayout(lab_root), "esx-a", "datastore1", "carol", (4 << 20,), cbt=False, fill=0.5)
    assert not host_a.find_vm("carol").disks[0].cbt_enabled
    snap = host_a.create_snapshot("carol", "vmigrate-1")
    assert snap.change_ids == {}
    with pytest.raises(ChangeIdInvalid):
        list(host_a.query_changed_areas("carol", snap, KEY, "whatever/0"))
    assert list(host_a.query_changed_areas("carol", snap, KEY, ALL_ALLOCATED))
    host_a.remove_snapshot("carol", snap.id)
    assert host_a.enable_change_tracking("carol").disks[0].cbt_enabled
    s1 = host_a.create_snapshot("carol", "vmigrate-2")
    epoch = s1.change_ids[KEY].split("/")[0]
    assert list(host_a.query_changed_areas("carol", s1, KEY, f"{epoch}/0")) == []
    host_a.remove_snapshot("carol", s1.id)


def test_state_survives_across_processes(host_a: LabHost, alice: str, lab_root: Path) -> None:
    """A snapshot taken by one process is queried and removed by another."""
    code = (
        "import sys; from vmigrate_lib.control.lab import LabHost;"
        "s = LabHost(sys.argv[1], 'esx-a').create_snapshot('alice', 'vmigrate-7');"
        "print(s.id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(lab_root)], capture_output=True, text=True, check=True
    )
    (snap,) = host_a.list_snapshots(alice)
    assert snap.id == out.stdout.strip() and snap.name == "vmigrate-7"
    assert list(host_a.query_changed_areas(alice, snap, KEY, snap.change_ids[KEY])) == []
    host_a.remove_snapshot(alice, snap.id)
    assert host_a.list_snapshots(alice) == []
