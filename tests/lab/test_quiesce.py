"""Quiescing a running guest is immediate: once ``set_workload(rate 0)`` returns, the
guest writes nothing more.

Tests (tests/lab/lab_helpers.quiesce, the snapshot tests) rely on it to read a steady
disk without sleeping.  The guest is the lab's real guest process; on ESXi the
equivalent is the guest OS itself, which vmigrate never asks to pause.
"""

from __future__ import annotations

from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.workload import WorkloadSpec

BUSY = WorkloadSpec(rate_mb_s=200.0, block_size=1 << 16, ack_interval=0.2)
IDLE = WorkloadSpec(rate_mb_s=0, block_size=1 << 16, ack_interval=0.2)


def writes(host: LabHost, vm: str) -> int:
    st = host.guest_status(vm)
    assert st is not None
    return int(st["writes"])


def test_no_write_after_quiesce_returns(host_a: LabHost, alice_off: str) -> None:
    """A busy guest (64 KiB blocks, as fast as it can) is quiesced 30 times; each time the
    write count read right after the call must not move across further guest round
    trips (before: a block being written when the call returned landed after it)."""
    host_a.set_workload(alice_off, BUSY)
    host_a.power_on(alice_off)
    host_a.wait_ready(alice_off, 30)
    moved = []
    for _ in range(30):
        host_a.set_workload(alice_off, BUSY)
        start = writes(host_a, alice_off)
        while writes(host_a, alice_off) < start + 3:
            pass  # each status call is a round trip to the guest: it is writing
        host_a.set_workload(alice_off, IDLE)
        w0 = writes(host_a, alice_off)
        for _ in range(5):
            host_a.flush_acks(alice_off)  # round trips that take the guest's locks
        w1 = writes(host_a, alice_off)
        if w1 != w0:
            moved.append(w1 - w0)
    assert not moved, f"writes after quiesce returned, in {len(moved)} of 30 tries: {moved}"
