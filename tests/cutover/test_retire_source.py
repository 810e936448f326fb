"""``cutover.identity: retire-source`` on the lab, through the CLI, killed at the step.

The lab has names to give up (its inventory and the VM's config), no NIC link state
and no autostart, so its retire is a rename (LabHost.retire_vm); the step, its plan
in ``state.json``, its resume and its rollback are the engine's, the same as on
vSphere (tests/vsphere/test_one_vcenter.py proves the NIC and autostart parts
against the simulator).  The kill is real: ``cutover_killer.py`` ends the process
with ``os._exit`` right after the step was recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cutover.cutover_helpers import Lab, cli, synced
from vmigrate_lib.control.host import Host, PowerState, RetirePlan
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.errors import PreflightError
from vmigrate_lib.session import close_migration, open_migration

FAST = ("--shutdown-time", "1s", "--boot-time", "1s")
KILLER = Path(__file__).with_name("cutover_killer.py")
RETIRED = "alice-retired-CHG-7"


def retire_params(lab: Lab) -> Lab:
    raw = yaml.safe_load(lab.params_file.read_text())
    raw.pop("dest_name")
    raw.update(change_id="CHG-7", cutover={"identity": "retire-source"})
    lab.params_file.write_text(yaml.safe_dump(raw))
    return lab


@pytest.fixture(name="retiring")
def retiring_fixture(lab: Lab) -> Lab:
    retire_params(lab)
    return synced(lab)


def killed(lb: Lab, spec: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(KILLER), spec, "cutover", *FAST,
                           "--params", str(lb.params_file)],
                          capture_output=True, text=True, timeout=120, check=False)


def cutover_state(lb: Lab) -> dict[str, Any]:
    data = json.loads((Path(lb.params().workspace) / "state.json").read_text())
    co: dict[str, Any] = data["cutover"]
    return co


class CannotRetire(LabHost):
    """A host without the capability: the Host interface's default."""

    def retire_plan(self, vm: str, new_name: str, note: str) -> RetirePlan | None:
        return Host.retire_plan(self, vm, new_name, note)


def test_host_that_cannot_retire_is_refused_at_preflight(lab: Lab) -> None:
    """retire-source asked of a host type without the capability: preflight's identity
    line refuses it with the alternative, before anything changes."""
    m = open_migration(retire_params(lab).params())
    try:
        m.source = CannotRetire(lab.root, "esx-a")
        report = run_preflight(m, raise_on_failure=False)
    finally:
        close_migration(m)
    err = report.first_error()
    assert isinstance(err, PreflightError)
    assert "retire-source needs a source host that can rename a VM" in err.one_line()
    assert "cutover.identity: new-name and a dest_name" in err.one_line()
    assert lab.alice_on() and lab.a.vm_exists("alice")


def test_preflight_says_what_retire_does(retiring: Lab) -> None:
    r = cli(retiring, "preflight")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"retire-source: at cutover alice is renamed {RETIRED}" in r.stdout + r.stderr


@pytest.mark.parametrize("spec", ["after:retire_source", "after:copy_files"])
def test_killed_at_retire_resumes_then_rolls_back(retiring: Lab, spec: str) -> None:
    """Killed after the step (Alice renamed, Bob not yet registered) or just before it:
    the next ``vmigrate cutover`` finishes, Bob runs under Alice's name on esx-b, Alice
    stays off under her retired name; ``vmigrate rollback`` gives her name back and
    powers her on."""
    a, b = retiring.a, retiring.b
    r = killed(retiring, spec)
    assert r.returncode == 137, r.stderr
    assert a.power_state(a.find_vm(RETIRED if spec.endswith("retire_source") else "alice").name) \
        == PowerState.OFF
    r = cli(retiring, "cutover", *FAST)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not a.vm_exists("alice") and a.find_vm(RETIRED).name == RETIRED
    assert a.power_state(RETIRED) == PowerState.OFF
    assert b.power_state("alice") == PowerState.ON and b.find_vm("alice").folder == "alice"
    co = cutover_state(retiring)
    assert co["status"] == "done" and co["retire"]["state"] == "retired"
    assert co["steps"]["retire_source"]["runs"] == 1

    r = cli(retiring, "rollback", "--yes-lose-bob-writes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not b.vm_exists("alice") and not a.vm_exists(RETIRED)
    assert a.find_vm("alice").name == "alice" and a.power_state("alice") == PowerState.ON
    assert cutover_state(retiring)["retire"]["state"] == "restored"
