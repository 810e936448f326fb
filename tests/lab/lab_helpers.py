"""Helpers of the lab tests (the fixtures are in tests/lab/conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path

from vmigrate_lib.control.host import CBT_GRAIN, PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.dataplane.agent.deltaformats import open_delta
from vmigrate_lib.lab.workload import WorkloadSpec

MiB = 1 << 20
SMALL_DISKS = (16 * MiB, 8 * MiB)


def wait_writes(host: LabHost, vm: str, more: int) -> None:
    st = host.guest_status(vm)
    assert st is not None
    target = st["writes"] + more
    deadline = time.monotonic() + 20
    while (st := host.guest_status(vm)) is not None and st["writes"] < target:
        assert time.monotonic() < deadline, "guest does not write"
        time.sleep(0.05)


def wait_disk_writes(host: LabHost, vm: str, disk_key: int, more: int = 1) -> None:
    """Wait until the guest has started ``more`` writes to one disk after this call (its
    sequence counter for that disk), instead of sleeping and hoping it wrote."""
    st = host.guest_status(vm)
    assert st is not None
    target = st["next_seq"][str(disk_key)] + more
    deadline = time.monotonic() + 20
    while (st := host.guest_status(vm)) is not None and st["next_seq"][str(disk_key)] < target:
        assert time.monotonic() < deadline, f"guest does not write to disk {disk_key}"
        time.sleep(0.02)


def quiesce(host: LabHost, vm: str) -> None:
    """Stop the workload (the guest keeps running) so the disk content is steady: when
    set_workload returns no write is under way (tests/lab/test_quiesce.py)."""
    host.set_workload(vm, WorkloadSpec(rate_mb_s=0, ack_interval=0.2))


def delta_files(vmdir: Path, stem: str = "alice") -> list[Path]:
    """The disk's snapshot delta files (descriptor and SEsparse extent), if any."""
    return sorted(vmdir.glob(f"{stem}-[0-9][0-9][0-9][0-9][0-9][0-9]*.vmdk"))


def delta_content(vmdir: Path, stem: str = "alice") -> list[tuple[int, bytes]]:
    """(guest offset, bytes) of every area the open SEsparse delta holds, read by the
    agent's reader (a file the lab wrote, read by code that did not write it)."""
    (extent,) = vmdir.glob(f"{stem}-[0-9][0-9][0-9][0-9][0-9][0-9]-sesparse.vmdk")
    with open_delta(str(extent)) as delta:
        return [(off, delta.read(off, n)) for off, n, _kind in delta.extents()]


def delta_grains(vmdir: Path, stem: str = "alice") -> list[int]:
    """The 64 KiB (CBT) grains holding delta data."""
    return sorted({g for off, data in delta_content(vmdir, stem)
                   for g in range(off // CBT_GRAIN, (off + len(data) - 1) // CBT_GRAIN + 1)})


def wait_off(host: LabHost, vm: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while host.power_state(vm) != PowerState.OFF:
        assert time.monotonic() < deadline, "guest did not stop"
        time.sleep(0.05)
