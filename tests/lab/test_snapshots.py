"""Snapshots on a running guest: the base is frozen, consolidation is complete and crash-safe."""

from __future__ import annotations

import time

import pytest

from tests.fsproof import sha
from tests.lab.lab_helpers import (
    delta_content,
    delta_files,
    delta_grains,
    quiesce,
    wait_writes,
)
from vmigrate_lib.control.host import CBT_GRAIN, PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.errors import SnapshotError
from vmigrate_lib.extents import from_blocks
from vmigrate_lib.lab.guest import FAULT_ENV
from vmigrate_lib.lab.vmconfig import VmConfig

KEY = 2000


def test_snapshot_freezes_base_while_guest_writes(host_a: LabHost, alice: str) -> None:
    vmdir = host_a.vm_dir(alice)
    base = vmdir / "alice-flat.vmdk"
    snap = host_a.create_snapshot(alice, "vmigrate-1")
    assert snap.disk_paths[KEY] == "alice/alice-flat.vmdk"
    before = sha(base)
    wait_writes(host_a, alice, 400)
    assert sha(base) == before
    st = host_a.guest_status(alice)
    assert st is not None and st["delta_grains"] > 0 and st["snapshot"]["name"] == "vmigrate-1"
    host_a.remove_snapshot(alice, snap.id)
    assert not delta_files(vmdir) and not (vmdir / "alice.vmdk").exists()
    wait_writes(host_a, alice, 50)
    assert host_a.list_snapshots(alice) == []


def test_consolidation_moves_delta_into_base_and_marks_ctk(host_a: LabHost, alice: str) -> None:
    vmdir = host_a.vm_dir(alice)
    s1 = host_a.create_snapshot(alice, "vmigrate-1")
    wait_writes(host_a, alice, 300)
    quiesce(host_a, alice)
    grains = sorted(set(delta_grains(vmdir)))
    assert grains
    delta = delta_content(vmdir)
    host_a.remove_snapshot(alice, s1.id)
    base = (vmdir / "alice-flat.vmdk").read_bytes()
    for off, data in delta:
        assert base[off : off + len(data)] == data
    s2 = host_a.create_snapshot(alice, "vmigrate-2")
    got = list(host_a.query_changed_areas(alice, s2, KEY, s1.change_ids[KEY]))
    assert got == from_blocks(grains, CBT_GRAIN)
    host_a.remove_snapshot(alice, s2.id)


def test_crash_mid_consolidation_is_finished_at_power_on(
    host_a: LabHost, alice_off: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = alice_off
    monkeypatch.setenv(FAULT_ENV, "3")
    host_a.power_on(vm)
    monkeypatch.delenv(FAULT_ENV)
    host_a.wait_ready(vm, 30)
    vmdir = host_a.vm_dir(vm)
    s1 = host_a.create_snapshot(vm, "vmigrate-1")
    wait_writes(host_a, vm, 400)
    quiesce(host_a, vm)
    grains = sorted(set(delta_grains(vmdir)))
    assert len(grains) > 3
    delta = delta_content(vmdir)
    with pytest.raises(SnapshotError):
        host_a.remove_snapshot(vm, s1.id)  # the guest dies after 3 grains
    deadline = time.monotonic() + 10
    while host_a.power_state(vm) != PowerState.OFF:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cfg = VmConfig.load(vmdir / "alice.vmx.json")
    assert [s.state for s in cfg.snapshots] == ["removing"]
    assert delta_files(vmdir)

    host_a.power_on(vm)  # boot finishes the consolidation first
    host_a.wait_ready(vm, 30)
    assert host_a.list_snapshots(vm) == []
    assert not delta_files(vmdir)
    base = (vmdir / "alice-flat.vmdk").read_bytes()
    for off, data in delta:
        assert base[off : off + len(data)] == data
    boot = host_a.guest_status(vm)
    assert boot is not None and boot["boot"]["ok"]


def test_remove_again_finishes_an_interrupted_consolidation_offline(
    host_a: LabHost, alice_off: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = alice_off
    monkeypatch.setenv(FAULT_ENV, "1")
    host_a.power_on(vm)
    monkeypatch.delenv(FAULT_ENV)
    host_a.wait_ready(vm, 30)
    s1 = host_a.create_snapshot(vm, "vmigrate-1")
    wait_writes(host_a, vm, 200)
    with pytest.raises(SnapshotError):
        host_a.remove_snapshot(vm, s1.id)
    host_a.power_off(vm)
    host_a.remove_snapshot(vm, s1.id)  # VM off: the files are consolidated here
    assert host_a.list_snapshots(vm) == []
    assert not delta_files(host_a.vm_dir(vm))


def test_foreign_snapshot_is_listed_and_blocks_a_second_one(host_a: LabHost, alice: str) -> None:
    foreign = host_a.create_snapshot(alice, "backup-tool", description="nightly")
    snaps = host_a.list_snapshots(alice)
    assert [(s.name, s.is_vmigrate, s.description) for s in snaps] == [
        ("backup-tool", False, "nightly")
    ]
    with pytest.raises(SnapshotError) as info:
        host_a.create_snapshot(alice, "vmigrate-1")
    assert info.value.fields["existing"] == ["backup-tool"]
    host_a.remove_snapshot(alice, foreign.id)
    with pytest.raises(SnapshotError):
        host_a.remove_snapshot(alice, foreign.id)


def test_snapshot_of_a_powered_off_vm(host_a: LabHost, alice_off: str) -> None:
    vmdir = host_a.vm_dir(alice_off)
    snap = host_a.create_snapshot(alice_off, "vmigrate-1")
    assert delta_files(vmdir)
    assert host_a.power_state(alice_off) == PowerState.OFF
    host_a.power_on(alice_off)  # a VM may run on its snapshot
    host_a.wait_ready(alice_off, 30)
    before = sha(vmdir / "alice-flat.vmdk")
    wait_writes(host_a, alice_off, 200)
    assert sha(vmdir / "alice-flat.vmdk") == before
    host_a.remove_snapshot(alice_off, snap.id)
    assert host_a.list_snapshots(alice_off) == []
