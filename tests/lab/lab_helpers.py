"""Fixtures and helpers of the lab tests.

Not a ``conftest.py``: other test folders do ``from conftest import ...``, and a
second conftest module would shadow theirs.  Test modules import the fixtures
they use (``*_fixture`` functions, registered under their short names).
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.layout import LabLayout
from vmigrate_lib.lab.lifecycle import create_vm, lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

MiB = 1 << 20
SMALL_DISKS = (16 * MiB, 8 * MiB)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_writes(host: LabHost, vm: str, more: int) -> None:
    st = host.guest_status(vm)
    assert st is not None
    target = st["writes"] + more
    deadline = time.monotonic() + 20
    while (st := host.guest_status(vm)) is not None and st["writes"] < target:
        assert time.monotonic() < deadline, "guest does not write"
        time.sleep(0.05)


def quiesce(host: LabHost, vm: str) -> None:
    """Stop the workload (the guest keeps running) so the disk content is steady."""
    host.set_workload(vm, WorkloadSpec(rate_mb_s=0, ack_interval=0.2))
    time.sleep(0.1)


def delta_grains(vmdir: Path, stem: str = "alice") -> list[int]:
    raw = (vmdir / f"{stem}-delta.map").read_bytes()
    return [g for (g,) in struct.iter_unpack("<I", raw)]


def wait_off(host: LabHost, vm: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while host.power_state(vm) != PowerState.OFF:
        assert time.monotonic() < deadline, "guest did not stop"
        time.sleep(0.05)


@pytest.fixture(name="lab_root")
def lab_root_fixture(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "lab"
    lab_up(root, vm="", power_on=False)
    yield root
    lab_down(root, timeout=5)


@pytest.fixture(name="host_a")
def host_a_fixture(lab_root: Path) -> LabHost:
    return LabHost(lab_root, "esx-a")


@pytest.fixture(name="host_b")
def host_b_fixture(lab_root: Path) -> LabHost:
    return LabHost(lab_root, "esx-b")


@pytest.fixture(name="alice_off")
def alice_off_fixture(lab_root: Path, host_a: LabHost) -> str:
    """Alice created, powered off, 25% prefilled, CBT on, brisk workload when started."""
    create_vm(
        LabLayout(lab_root),
        "esx-a",
        "datastore1",
        "alice",
        SMALL_DISKS,
        workload=WorkloadSpec(rate_mb_s=8.0, ack_interval=0.2),
        fill=0.25,
    )
    return "alice"


@pytest.fixture(name="alice")
def alice_fixture(alice_off: str, host_a: LabHost) -> str:
    """Alice running and booted."""
    host_a.power_on(alice_off)
    host_a.wait_ready(alice_off, 30)
    return alice_off
