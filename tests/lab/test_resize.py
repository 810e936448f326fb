"""Disk geometry changes in the lab: grow (live and off), shrink refused, add, remove."""

from __future__ import annotations

import os

import pytest

from tests.lab.lab_helpers import (
    MiB,
    wait_writes,
)
from vmigrate_lib.control.host import ALL_ALLOCATED
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.errors import ChangeIdInvalid, LabError, ParameterError, SnapshotError
from vmigrate_lib.lab.ctk import GRAIN, ChangeTracker


def _epoch(host: LabHost, vm: str, stem: str) -> str:
    t = ChangeTracker(host.vm_dir(vm) / f"{stem}-ctk.bin", writable=False)
    try:
        return t.epoch
    finally:
        t.close()


def test_grow_while_off_grows_file_map_and_config(host_a: LabHost, alice_off: str) -> None:
    before = host_a.create_snapshot(alice_off, "s1")
    host_a.remove_snapshot(alice_off, before.id)
    old_epoch = _epoch(host_a, alice_off, "alice")
    vm = host_a.resize_disk(alice_off, 2000, 24 * MiB)
    assert vm.disks[0].capacity == 24 * MiB and vm.disks[1].capacity == 8 * MiB
    flat = host_a.vm_dir(alice_off) / "alice-flat.vmdk"
    assert os.stat(flat).st_size == 24 * MiB
    assert host_a.config(alice_off).disk(2000).capacity == 24 * MiB
    t = ChangeTracker(host_a.vm_dir(alice_off) / "alice-ctk.bin", writable=False)
    try:
        assert t.grains == 24 * MiB // GRAIN and t.epoch != old_epoch
    finally:
        t.close()
    snap = host_a.create_snapshot(alice_off, "s2")
    try:
        with pytest.raises(ChangeIdInvalid):  # ids from before the resize are of an old epoch
            host_a.query_changed_areas(alice_off, snap, 2000, before.change_ids[2000])
        assert list(host_a.query_changed_areas(alice_off, snap, 2001, before.change_ids[2001])) \
            == []  # the other disk is still tracked in its epoch (nothing written while off)
        alloc = list(host_a.query_changed_areas(alice_off, snap, 2000, ALL_ALLOCATED))
        assert alloc and alloc[-1].start + alloc[-1].length <= 16 * MiB  # new area: a hole
    finally:
        host_a.remove_snapshot(alice_off, snap.id)
    host_a.resize_disk(alice_off, 2000, 24 * MiB)  # same size: nothing to do


def test_grow_live_refusals_and_boot(host_a: LabHost, alice: str) -> None:
    with pytest.raises(ParameterError, match="cannot shrink"):
        host_a.resize_disk(alice, 2001, 4 * MiB)
    with pytest.raises(ParameterError, match="multiple of the block size"):
        host_a.resize_disk(alice, 2001, 8 * MiB + 100)
    with pytest.raises(LabError, match="no disk with key"):
        host_a.resize_disk(alice, 2999, 32 * MiB)
    snap = host_a.create_snapshot(alice, "hold")
    with pytest.raises(SnapshotError, match=r"remove the snapshot first|snapshot"):
        host_a.resize_disk(alice, 2001, 32 * MiB)
    host_a.remove_snapshot(alice, snap.id)
    host_a.resize_disk(alice, 2001, 32 * MiB)
    wait_writes(host_a, alice, 500)
    st = host_a.guest_status(alice)
    assert st is not None and st["state"] == "running"
    host_a.shutdown_guest(alice)
    from tests.lab.lab_helpers import wait_off

    wait_off(host_a, alice)
    host_a.power_on(alice)
    vm = host_a.wait_ready(alice, 30)  # the boot check proves every acked block
    assert [d.capacity for d in vm.disks] == [16 * MiB, 32 * MiB]


def test_add_and_remove_disk_live(host_a: LabHost, alice: str) -> None:
    d = host_a.add_disk(alice, 8 * MiB)
    assert (d.key, d.path) == (2002, "alice/alice_2-flat.vmdk")
    wait_writes(host_a, alice, 300)
    st = host_a.guest_status(alice)
    assert st is not None and int(st["next_seq"]["2002"]) > 1  # the guest writes it
    vm = host_a.remove_disk(alice, 2001)
    assert [x.key for x in vm.disks] == [2000, 2002]
    assert (host_a.vm_dir(alice) / "alice_1-flat.vmdk").exists()  # files stay
    wait_writes(host_a, alice, 200)
    from tests.lab.lab_helpers import wait_off

    host_a.shutdown_guest(alice)
    wait_off(host_a, alice)
    host_a.power_on(alice)
    host_a.wait_ready(alice, 30)
