"""Fixtures of the lab tests: an empty lab, its two hosts, Alice off or running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.lab_helpers import SMALL_DISKS
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.layout import LabLayout
from vmigrate_lib.lab.lifecycle import create_vm, lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec


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
