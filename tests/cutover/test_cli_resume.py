"""The CLI, killed between any two cutover steps, resumes (or rolls back) cleanly.

The cutover runs in a subprocess: ``cutover_killer.py`` (a test-only entry point)
runs the CLI with a cutover hook that calls ``os._exit`` right after a step was
recorded, as a kill -9 would.  Production code has no switch for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cutover.cutover_helpers import (
    Lab,
    Watch,
    assert_alice_back,
    assert_bob_has_every_acked_block,
    cli,
    journal,
    synced,
)
from vmigrate_lib.engine.cutover import STEP_NAMES

FAST = ("--shutdown-time", "1s", "--boot-time", "1s")
KILLER = Path(__file__).with_name("cutover_killer.py")


def killed_cli(lb: Lab, spec: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI through the test-only entry point that dies at ``spec`` (``after:<step>``)."""
    return subprocess.run(
        [sys.executable, str(KILLER), spec, *args, "--params", str(lb.params_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(name="synced")
def synced_fixture(lab: Lab) -> Lab:
    return synced(lab)


def state(lb: Lab) -> dict[str, object]:
    data: dict[str, object] = json.loads((Path(lb.params().workspace) / "state.json").read_text())
    return data


def assert_migrated(lb: Lab) -> None:
    assert lb.bob_on() and not lb.alice_on()
    bob = lb.b.guest_status("bob")
    assert bob is not None and bob["boot"]["ok"], bob  # Bob's boot check: every acked block
    # Bob writes once up (newer sequence numbers), so check the acked ones as a lower bound
    assert_bob_has_every_acked_block(lb, exact=False)


@pytest.mark.parametrize("step", [s for s in STEP_NAMES if s != "done"])
def test_killed_after_step_resumes(synced: Lab, step: str) -> None:
    with Watch(synced):
        r = killed_cli(synced, f"after:{step}", "cutover", *FAST)
        assert r.returncode == 137, r.stderr
        co = state(synced)["cutover"]
        assert isinstance(co, dict) and co["steps"][step]["status"] == "done"
        r = cli(synced, "cutover", *FAST)
        assert r.returncode == 0, r.stdout + r.stderr
    assert "done" in r.stdout
    assert_migrated(synced)
    resumed = journal(synced, "cutover_resumed")
    assert resumed and resumed[-1]["step"] == step
    # a resumed run never repeats a finished step with effects (go/no-go is re-evaluated)
    done = [x["name"] for x in journal(synced, "step") if x["status"] == "done"]
    for name in STEP_NAMES[1:-1]:
        assert done.count(name) == 1, (name, done)


def test_killed_after_shutdown_then_rollback(synced: Lab) -> None:
    with Watch(synced):
        assert killed_cli(synced, "after:shutdown", "cutover", *FAST).returncode == 137
        assert not synced.alice_on()
        r = cli(synced, "rollback")
        assert r.returncode == 0, r.stderr
        assert_alice_back(synced)
        r = cli(synced, "cutover", *FAST)  # a new attempt after the rollback
        assert r.returncode == 0, r.stderr
    assert "attempt 2" in r.stdout
    assert_migrated(synced)


def test_killed_after_ready_rollback_needs_consent(synced: Lab) -> None:
    with Watch(synced):
        assert killed_cli(synced, "after:wait_ready", "cutover", *FAST).returncode == 137
        r = cli(synced, "rollback")
        assert r.returncode == 2 and "yes-lose-bob-writes" in r.stderr
        assert synced.bob_on()
        r = cli(synced, "rollback", "--yes-lose-bob-writes")
        assert r.returncode == 0, r.stderr
    assert "lost" in r.stdout
    assert_alice_back(synced)
    # Bob ran on the copies: the next cycle reads them whole for that reason, not as a
    # copy "modified by something other than this migration" (its mtime moved with Bob)
    r = cli(synced, "sync", "--cycles", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "something other than this migration" not in r.stdout + r.stderr
    assert not journal(synced, "destination_modified")
    assert {d["mode"] for d in journal(synced, "cycle")[-1]["disks"]} == {"hash"}


def test_no_environment_variable_stops_a_cutover(synced: Lab) -> None:
    """An operator's shell (or a Jupyter kernel) that carries the old test switch
    ``VMIGRATE_CUTOVER_FAULT`` runs a whole cutover: production code reads no test
    switch from the environment (before: ``os._exit(137)`` right after the shutdown,
    Alice stopped and the CLI gone without a word).  The lab only; the switch was
    host-independent."""
    env = {**os.environ, "VMIGRATE_CUTOVER_FAULT": "after:shutdown"}
    with Watch(synced):
        r = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "cutover", *FAST,
                            "--params", str(synced.params_file)],
                           capture_output=True, text=True, timeout=120, env=env, check=False)
        assert r.returncode == 0, (r.returncode, r.stdout + r.stderr)
    assert_migrated(synced)


def test_cli_no_go_exits_2_and_plan(synced: Lab) -> None:
    r = cli(synced, "cutover", "--downtime-budget", "0.01s", *FAST)
    assert r.returncode == 2 and "no-go" in r.stderr
    assert synced.alice_on() and not synced.b.vm_exists("bob")
    r = cli(synced, "plan", *FAST)
    assert r.returncode == 0 and "predicted downtime" in r.stdout
    r = cli(synced, "plan", "--json", "--throughput", "1KB/s", *FAST)
    plan = json.loads(r.stdout)
    assert plan["will_converge"] is False and plan["throughput_source"] == "override"
    r = cli(synced, "cutover", "--network-map", "nonsense")
    assert r.returncode == 2


def test_sync_until_converged(lab: Lab) -> None:
    r = cli(lab, "sync", "--until-converged", "--downtime-budget", "30s", "--max-cycles", "6",
            "--target-interval", "0.5s", *FAST)
    assert r.returncode == 0, r.stderr
    assert "stopped: converged" in r.stdout and "decision is yours" in r.stdout
    assert journal(lab, "plan")[-1]["converged"] is True
    assert lab.alice_on()  # never cuts over by itself
    r = cli(lab, "sync", "--until-converged", "--throughput", "1KB/s", "--max-cycles", "5",
            *FAST)
    assert r.returncode == 0 and "stopped: won't converge" in r.stdout
    assert "quieter hour" in r.stdout
