"""Issue 11 item 3: a guest without VMware Tools, in the real lab.

The lab VM's ``tools: false`` plays a guest without Tools as vSphere shows one
(tests/peers/README.md, "Guests without VMware Tools"): ``ShutdownGuest`` answers
the ``ToolsUnavailable`` fault at once (vSphere API reference), the VM reports no
Tools and no IP (``guest.toolsRunningStatus`` = ``guestToolsNotRunning``), and a
wait for Tools runs to its timeout.  What these tests prove: go/no-go refuses
before anything stops, the shutdown does not wait for a guest nobody can ask,
readiness by power + probes completes a cutover that Tools-readiness could not,
and once Bob has run past the grace period a failure stops instead of rolling back.
What only a real ESXi shows: how long a real guest without Tools takes to boot,
and that its services answer the probes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cutover.cutover_helpers import (
    Lab,
    Watch,
    assert_alice_back,
    assert_bob_has_every_acked_block,
    cli,
    cutover_record,
    journal,
)
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cutover import CutoverHooks, CutoverOptions, run_cutover, run_rollback
from vmigrate_lib.errors import BobMayHaveServed, CutoverNoGo, RollbackRefused

FAST: dict[str, Any] = {"shutdown_s": 1.0, "boot_s": 1.0}


def test_no_tools_refused_before_anything_stops(lab: Lab, mig: Migration) -> None:
    """Without Tools and without an allowed hard power-off, go/no-go says no and Alice runs
    on (before: the shutdown's failure was swallowed and the whole timeout waited)."""
    lab.a.set_tools("alice", False)
    assert not lab.a.find_vm("alice").tools_running
    with pytest.raises(CutoverNoGo, match="no VMware Tools") as ei:
        run_cutover(mig, CutoverOptions(shutdown_timeout=120.0, **FAST))
    assert ei.value.exit_code == 2
    assert lab.alice_on() and not lab.b.vm_exists("bob")
    co = cutover_record(mig)
    assert co.status == "aborted" and co.shutdown_requested_at is None


def test_no_tools_hard_off_at_once_and_ready_by_power_and_probes(lab: Lab, mig: Migration) -> None:
    """Hard power-off allowed: ToolsUnavailable is not waited out, readiness is chosen
    automatically from Alice's Tools state (power-and-probes, journaled), Bob boots
    without Tools, his probe passes and the cutover completes with every acknowledged
    block on his disks (before: wait_ready needed Tools and timed out)."""
    lab.a.set_tools("alice", False)
    opts = CutoverOptions(shutdown_timeout=600.0, allow_hard_poweroff=True, ready_timeout=30.0,
                          probe_command="true", **FAST)
    with Watch(lab):
        res = run_cutover(mig, opts)
    assert res.status == "done"
    co = cutover_record(mig)
    assert co.hard_poweroff and (co.go or {}).get("ready") == "power-and-probes"
    assert (co.go or {}).get("alice_tools") is False
    assert any("no VMware Tools" in w for w in res.warnings)
    assert (res.parts.get("shutdown_s") or 0.0) < opts.shutdown_timeout  # not waited out
    assert [r["ready"] for r in journal(lab, "go_decision")] == ["power-and-probes"]
    assert not lab.b.find_vm("bob").tools_running  # Bob is the same guest: no Tools either
    assert_bob_has_every_acked_block(lab)


def test_power_and_probes_needs_a_probe(lab: Lab, mig: Migration) -> None:
    """Without Tools only the probes can say Bob works: no probe is a no-go reason."""
    lab.a.set_tools("alice", False)
    with pytest.raises(CutoverNoGo, match="only the probes"):
        run_cutover(mig, CutoverOptions(allow_hard_poweroff=True, **FAST))
    assert lab.alice_on()


def test_no_automatic_rollback_after_grace(lab: Lab, mig: Migration) -> None:
    """Bob loses his Tools after power-on (a guest whose Tools never start): waiting for
    Tools fails after ready_timeout, past the grace period, so the cutover stops with Bob
    running and Alice off; rollback then needs the consent flag (before: it rolled back
    by itself and hard-powered-off a Bob that may have served writes)."""

    def bob_without_tools(step: str) -> None:
        if step == "wait_ready":
            lab.b.set_tools("bob", False)

    with Watch(lab):
        with pytest.raises(BobMayHaveServed, match="may have served writes") as ei:
            run_cutover(mig, CutoverOptions(ready_timeout=2.0, rollback_grace=1.0, **FAST),
                        hooks=CutoverHooks(before_step=bob_without_tools))
        assert "rollback --yes-lose-bob-writes" in ei.value.hint
        assert lab.bob_on() and not lab.alice_on()
        co = cutover_record(mig)
        assert co.status == "stopped" and co.bob_ready_at is None
        assert [r["step"] for r in journal(lab, "cutover_stopped")] == ["wait_ready"]
        with pytest.raises(RollbackRefused):
            run_rollback(mig)
        assert lab.bob_on()
        res = run_rollback(mig, confirm_data_loss=True)
    assert res.status == "rolled_back"
    assert_alice_back(lab)


def test_failure_within_grace_still_rolls_back(lab: Lab, mig: Migration) -> None:
    """A failure right after power-on (Bob ran less than the grace period) still rolls
    back by itself: the rule only spares a Bob who may have served."""

    def bob_without_tools(step: str) -> None:
        if step == "wait_ready":
            lab.b.set_tools("bob", False)

    with Watch(lab), pytest.raises(Exception, match="rolled back"):
        run_cutover(mig, CutoverOptions(ready_timeout=0.5, rollback_grace=600.0, **FAST),
                    hooks=CutoverHooks(before_step=bob_without_tools))
    assert cutover_record(mig).status == "rolled_back"
    assert_alice_back(lab)


def test_cli_no_tools_is_one_line_exit_2(lab: Lab) -> None:
    """Through the CLI: exit 2, one line naming the cause and the flag that decides, Alice
    still running (the engine's no-go, at the boundary)."""
    lab.a.set_tools("alice", False)
    assert cli(lab, "sync", "--cycles", "1").returncode == 0
    r = cli(lab, "cutover", "--ready", "power-and-probes", "--rollback-grace", "30s")
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "no VMware Tools" in lines[0], r.stderr
    assert "--allow-hard-poweroff" in lines[0]
    assert lab.alice_on() and not lab.b.vm_exists("bob")
