"""The Host's declared capabilities drive the cutover: which files are runtime state and
how to wait for a power-off are the host's, and the engine names no implementation.

Real lab hosts, a real guest and the real cutover, in process.  What only a real ESXi
host would show: its folder's real runtime files (here the lab's and VMware's list from
the vSphere documentation, "Virtual Machine Files") and the cost of its API calls (the
default wait reads the power state once a second, the engine's old loop every 50 ms).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cutover.cutover_helpers import (
    Lab,
    Watch,
    assert_bob_has_every_acked_block,
    cutover_record,
)
from vmigrate_lib.control.host import Host, PowerState
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cutover import CutoverOptions, run_cutover

FAST: dict[str, Any] = {"shutdown_s": 1.0, "boot_s": 1.0}


def test_runtime_files_are_the_hosts_to_name(lab: Lab) -> None:
    """The default knows VMware's runtime files only; the lab adds its own (change maps,
    deltas, guest lock, boot report): the engine keeps no list of either (before: the
    cutover's SKIP_SUFFIXES held the lab's ``-ctk.bin``, ``.sock``, ``boot.json``)."""
    for name in ("vmware.log", "alice.vmx.lck", "alice.vswp", "alice-ctk.vmdk",
                 "alice-000001-delta.vmdk"):
        assert Host.is_runtime_file(lab.a, name) and lab.a.is_runtime_file(name), name
    for name in ("alice-ctk.bin", "alice-delta.bin", "alice-delta.map", "guest.lock",
                 "boot.json"):
        assert lab.a.is_runtime_file(name) and not Host.is_runtime_file(lab.a, name), name
    for name in ("alice.vmx.json", "alice.nvram", "acks-2000.bin"):
        assert not lab.a.is_runtime_file(name), name


def test_cutover_asks_the_source_host_which_files_stay(
    lab: Lab, mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the source host calls runtime state stays behind; others travel (renamed
    when they carry Alice's name).  Before: the engine skipped by its own suffix list and
    never asked the host (``is_runtime_file`` did not exist)."""
    (lab.alice_dir / "scratch.state").write_bytes(b"the host's own")
    (lab.alice_dir / "notes.txt").write_bytes(b"the operator's")
    host_says = mig.source.is_runtime_file
    monkeypatch.setattr(mig.source, "is_runtime_file",
                        lambda name: name == "scratch.state" or host_says(name))
    with Watch(lab):
        res = run_cutover(mig, CutoverOptions(**FAST))
    assert res.status == "done"
    copied = set(cutover_record(mig).files_copied or [])
    assert "notes.txt" in copied and (lab.bob_dir / "notes.txt").read_bytes() == b"the operator's"
    assert "scratch.state" not in copied and not (lab.bob_dir / "scratch.state").exists()
    assert not [n for n in copied if n.endswith(("-ctk.bin", "-delta.bin", ".lock", "boot.json"))]
    assert_bob_has_every_acked_block(lab)


def test_the_source_host_owns_the_wait_for_power_off(
    lab: Lab, mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shutdown step asks the host to wait (once, with the operator's timeout) and
    does not poll the power state itself.  Before: the engine read ``power_state`` every
    50 ms (up to 6,000 API calls in a 5-minute vSphere shutdown) and the host had no say."""
    waits: list[tuple[str, float]] = []
    reads: list[str] = []
    host_wait, host_state = mig.source.wait_powered_off, mig.source.power_state
    in_wait = [False]

    def wait(vm: str, timeout: float) -> bool:
        waits.append((vm, timeout))
        in_wait[0] = True
        try:
            return host_wait(vm, timeout)
        finally:
            in_wait[0] = False

    def state(vm: str) -> PowerState:
        if not in_wait[0]:
            reads.append(vm)
        return host_state(vm)

    monkeypatch.setattr(mig.source, "wait_powered_off", wait)
    monkeypatch.setattr(mig.source, "power_state", state)
    with Watch(lab):
        res = run_cutover(mig, CutoverOptions(shutdown_timeout=42.0, **FAST))
    assert res.status == "done"
    assert waits == [("alice", 42.0)]
    # outside the host's wait the engine reads Alice's state a bounded number of times
    # (before the request, after the wait, before Bob's power-on...), not once per 50 ms
    assert len(reads) <= 8, reads
