"""Cutover in the real lab, in process: a full migration, and a fault at every step."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cutover.cutover_helpers import (
    Lab,
    Watch,
    assert_alice_back,
    assert_bob_has_every_acked_block,
    assert_identical,
    cutover_record,
)
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.engine import copier
from vmigrate_lib.engine import transfer as transfer_mod
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cutover import CutoverOptions, run_cutover, run_rollback
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.errors import (
    CutoverError,
    CutoverNoGo,
    LabError,
    PowerError,
    ProbeFailed,
    RollbackRefused,
    TransportError,
)

#: Lab timings are sub-second; the planner gets them as parameters until measured.
FAST: dict[str, Any] = {"shutdown_s": 1.0, "boot_s": 1.0}


@pytest.fixture
def listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


def steps_done(m: Migration) -> list[str]:
    return [r["name"] for r in m.workspace.journal.records("step") if r["status"] == "done"]


def test_full_migration_with_writing_guest(lab: Lab, mig: Migration, listener: int) -> None:
    with Watch(lab):
        res = run_cutover(mig, CutoverOptions(probes=(listener,), probe_host="127.0.0.1", **FAST))
    assert res.status == "done"
    assert not lab.alice_on() and lab.bob_on()
    assert_bob_has_every_acked_block(lab)  # Alice's clean final map, exact sequence numbers
    assert_identical(lab)  # Bob idle: his disks are Alice's final state, byte for byte
    boot = lab.b.guest_status("bob")
    assert boot is not None and boot["boot"]["ok"]  # his own boot check agrees
    assert res.downtime is not None and res.downtime > 0  # no upper bound: a loaded runner is slow
    assert res.predicted is not None
    assert res.parts["shutdown_s"] + res.parts["final_copy_s"] + res.parts["boot_s"] == \
        pytest.approx(res.downtime)
    assert steps_done(mig) == ["go_no_go", "predelta", "shutdown", "final_sync", "certify",
                               "copy_files", "retire_source", "register", "power_on",
                               "wait_ready", "probes"]
    done = list(mig.workspace.journal.records("cutover_done"))[-1]
    assert done["measured"]["downtime_s"] == res.downtime
    assert done["predicted"]["predicted_downtime"] == res.predicted
    assert list(mig.workspace.journal.records("cutover_measured"))
    assert cutover_record(mig).registered is True
    # done is done: running it again changes nothing
    assert run_cutover(mig, CutoverOptions(**FAST)).status == "done"


def test_no_go_changes_nothing_and_force_is_recorded(lab: Lab, mig: Migration) -> None:
    with pytest.raises(CutoverNoGo) as ei:
        run_cutover(mig, CutoverOptions(budget=0.01, **FAST))
    assert ei.value.exit_code == 2
    assert lab.alice_on() and not lab.b.vm_exists("bob")
    with pytest.raises(CutoverNoGo):
        run_cutover(mig, CutoverOptions(max_sync_age=0.0, **FAST))
    with Watch(lab):
        res = run_cutover(mig, CutoverOptions(budget=0.01, force=True, **FAST))
    assert res.status == "done"
    assert (cutover_record(mig).go or {}).get("forced") is True
    assert any("--force" in w for w in res.warnings)


def test_shutdown_timeout_rolls_back_then_hard_poweroff(
    lab: Lab, mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mig.source, "shutdown_guest", lambda vm: None)  # a hung guest
    with Watch(lab), pytest.raises(CutoverError, match="rolled back"):
        run_cutover(mig, CutoverOptions(shutdown_timeout=0.5, **FAST))
    assert_alice_back(lab)
    assert cutover_record(mig).status == "rolled_back"
    with Watch(lab):
        res = run_cutover(mig, CutoverOptions(shutdown_timeout=0.5, allow_hard_poweroff=True,
                                              **FAST))
    assert res.status == "done" and res.attempt == 2
    assert cutover_record(mig).hard_poweroff is True
    # a pulled plug: Alice's ack map is a lower bound, and Bob has every acked block
    assert_bob_has_every_acked_block(lab)
    assert_identical(lab)


def test_final_copy_fails_rolls_back_and_retry_resumes(
    lab: Lab, mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = copier.copy_extents  # the object transfer.py imported by name

    def broken(*a: Any, **kw: Any) -> Any:
        raise TransportError("link to esx-b lost (injected)")

    monkeypatch.setattr(transfer_mod, "copy_extents", broken)
    with Watch(lab), pytest.raises(CutoverError, match="final_sync"):
        run_cutover(mig, CutoverOptions(**FAST))
    assert_alice_back(lab)
    monkeypatch.setattr(transfer_mod, "copy_extents", real)
    with Watch(lab):
        res = run_cutover(mig, CutoverOptions(**FAST))
    assert res.status == "done"
    assert_bob_has_every_acked_block(lab)
    assert_identical(lab)


def test_register_fails_rolls_back(lab: Lab, mig: Migration, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: Any, **kw: Any) -> Any:
        raise LabError("inventory of esx-b is locked (injected)")

    monkeypatch.setattr(mig.dest, "register_vm", broken)
    with Watch(lab), pytest.raises(CutoverError, match="register"):
        run_cutover(mig, CutoverOptions(**FAST))
    assert_alice_back(lab)
    # Bob never ran: his copy is still trusted, a retry may go straight away
    assert not any(d.untrusted for d in mig.workspace.state.disks.values())


def test_power_on_fails_rolls_back_and_retry_needs_a_sync(
    lab: Lab, mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = mig.dest.power_on

    def half_on(vm: str, timeout: float = 120.0) -> None:
        real(vm, timeout)  # he did start, then the call "failed": the worst case
        raise PowerError("power-on task failed (injected)", vm=vm)

    monkeypatch.setattr(mig.dest, "power_on", half_on)
    with Watch(lab), pytest.raises(CutoverError, match="power_on"):
        run_cutover(mig, CutoverOptions(**FAST))
    assert_alice_back(lab)
    assert all(d.untrusted for d in mig.workspace.state.disks.values())
    monkeypatch.setattr(mig.dest, "power_on", real)
    with pytest.raises(CutoverNoGo, match="not proven"):
        run_cutover(mig, CutoverOptions(**FAST))
    run_cycles(mig, 2, interval=0.2)  # hash-compares Bob's disks, then a tracked delta
    with Watch(lab):
        assert run_cutover(mig, CutoverOptions(**FAST)).status == "done"
    assert_bob_has_every_acked_block(lab)
    assert_identical(lab)


def test_boot_check_failure_rolls_back(
    lab: Lab, mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bad_boot(vm: str, timeout: float) -> Any:
        raise LabError(f"VM {vm} failed its boot check: 3 missing block(s) (injected)")

    monkeypatch.setattr(mig.dest, "wait_ready", bad_boot)
    with Watch(lab), pytest.raises(CutoverError, match="wait_ready"):
        run_cutover(mig, CutoverOptions(**FAST))
    assert_alice_back(lab)


def test_probe_fails_stops_and_rollback_needs_consent(lab: Lab, mig: Migration) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    with Watch(lab):
        with pytest.raises(ProbeFailed):
            run_cutover(mig, CutoverOptions(probes=(closed,), probe_host="127.0.0.1",
                                            probe_timeout=0.5, **FAST))
        assert lab.bob_on() and not lab.alice_on()  # stopped: the operator decides
        assert cutover_record(mig).status == "probes_failed"
        with pytest.raises(RollbackRefused) as ei:
            run_rollback(mig)
        assert ei.value.exit_code == 2 and lab.bob_on()
        res = run_rollback(mig, confirm_data_loss=True)
    assert res.status == "rolled_back"
    assert any("lost" in w for w in res.warnings)
    assert_alice_back(lab)
    assert all(d.untrusted for d in mig.workspace.state.disks.values())


def test_probe_command(lab: Lab, mig: Migration) -> None:
    res = run_cutover(mig, CutoverOptions(probe_command='sh -c "test -n \\"$VMIGRATE_VM\\""',
                                          **FAST))
    assert res.status == "done"
    assert res.record is not None and res.record.probes
    assert res.record.probes[0]["ok"] is True
    assert lab.b.power_state("bob") == PowerState.ON
