"""Registering a copy on another host and booting it: the boot check proves the copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.lab.lab_helpers import wait_disk_writes, wait_off
from vmigrate_lib.control.host import PowerState, VmInfo
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.errors import DestinationExists, DiskMismatch, LabError, PowerError
from vmigrate_lib.lab.acks import AckMap
from vmigrate_lib.lab.verify import verify_copy


def copy_alice(host_a: LabHost, host_b: LabHost, alice: str, folder: str) -> tuple[VmInfo, Path]:
    """Stop Alice cleanly and copy her disks and ack maps to esx-b (sparse, as cp does)."""
    info = host_a.find_vm(alice)
    host_a.shutdown_guest(alice)
    wait_off(host_a, alice)
    src = host_a.vm_dir(alice)
    dst = host_b.datastore_path("datastore1") / folder
    dst.mkdir()
    for d in info.disks:
        name = d.path.split("/")[-1]
        shutil.copyfile(src / name, dst / name)
        shutil.copyfile(host_a.ack_path(alice, d.key), dst / f"acks-{d.key}.bin")
    return info, dst


def test_good_copy_boots_on_host_b(host_a: LabHost, host_b: LabHost, alice: str) -> None:
    info, dst = copy_alice(host_a, host_b, alice, "bob")
    bob = host_b.register_vm("bob", "datastore1", "bob", info, {"VM Network": "Prod"})
    assert bob.host == "esx-b" and bob.power == PowerState.OFF
    assert [(d.key, d.capacity, d.path) for d in bob.disks] == [
        (d.key, d.capacity, "bob/" + d.path.split("/")[-1]) for d in info.disks
    ]
    assert host_b.register_vm("bob", "datastore1", "bob", info).uuid == bob.uuid  # idempotent
    with pytest.raises(DestinationExists):
        host_b.register_vm("bob", "datastore1", "elsewhere", info)
    host_b.power_on("bob")
    ready = host_b.wait_ready("bob", 30)
    assert ready.tools_running and ready.guest_ip
    with pytest.raises(PowerError):
        host_b.unregister_vm("bob")
    st = host_b.guest_status("bob")
    assert st is not None and st["boot"]["ok"]
    assert all(d["acked"] > 0 and d["exact"] for d in st["boot"]["disks"])
    host_b.power_off("bob")
    host_b.unregister_vm("bob")
    assert not host_b.vm_exists("bob") and (dst / "bob.vmx.json").exists()


def test_corrupted_copy_fails_its_boot_check(host_a: LabHost, host_b: LabHost, alice: str) -> None:
    wait_disk_writes(host_a, alice, 2000, 20)  # acknowledged blocks to corrupt
    info, dst = copy_alice(host_a, host_b, alice, "bob")
    acks = AckMap.load(dst / "acks-2000.bin")
    index = sorted(acks.seqs)[len(acks.seqs) // 2]
    flat = dst / "alice-flat.vmdk"
    with open(flat, "r+b") as fh:  # flip one payload byte of an acknowledged block
        fh.seek(index * acks.block_size + 1000)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    report = verify_copy(flat, acks)
    assert not report.ok and report.torn == 1 and report.missing == 1
    host_b.register_vm("bob", "datastore1", "bob", info)
    host_b.power_on("bob")
    with pytest.raises(LabError) as err:
        host_b.wait_ready("bob", 30)
    assert "torn" in str(err.value) and err.value.fields["boot"]["ok"] is False
    assert host_b.power_state("bob") == PowerState.ON  # stuck at "boot", like a kernel panic
    assert not host_b.find_vm("bob").tools_running


def test_stale_copy_missing_the_last_writes_is_detected(
    host_a: LabHost, host_b: LabHost, alice: str
) -> None:
    dst = host_b.datastore_path("datastore1") / "bob"
    dst.mkdir()
    shutil.copyfile(
        host_a.vm_dir(alice) / "alice-flat.vmdk", dst / "alice-flat.vmdk"
    )  # live, early
    wait_disk_writes(host_a, alice, 2000)  # a write that started after the copy
    host_a.shutdown_guest(alice)
    wait_off(host_a, alice)
    report = verify_copy(dst / "alice-flat.vmdk", host_a.ack_path(alice, 2000))
    assert not report.ok and report.wrong_seq + report.missing > 0


def test_register_checks_the_disks(host_a: LabHost, host_b: LabHost, alice_off: str) -> None:
    info = host_a.find_vm(alice_off)
    dst = host_b.datastore_path("datastore1") / "bob"
    dst.mkdir()
    with pytest.raises(DiskMismatch):
        host_b.register_vm("bob", "datastore1", "bob", info)
    for i, d in enumerate(info.disks):
        with open(dst / f"bob{'' if i == 0 else f'_{i}'}-flat.vmdk", "wb") as fh:
            fh.truncate(d.capacity - (4096 if i else 0))
    with pytest.raises(DiskMismatch):  # second disk has the wrong size
        host_b.register_vm("bob", "datastore1", "bob", info)
    assert not host_b.vm_exists("bob")
