"""A whole migration over SSH only: ``esxi`` source and destination, through the CLI.

Issue 12 item 5.  Both lab hosts are served as ESXi hosts (sshd in network namespaces,
busybox login shell, vim-cmd and vmkfstools answering in ESXi's format: tests/peers/
esxi_shell, sources in tests/peers/README.md); the guest writes throughout.  Seed,
deltas, cutover (Bob registered from his rewritten .vmx, powered on, the boot check
reads every acknowledged block), in each change-tracking mode.  What only real ESXi
hosts show: vim-cmd's timings, VMFS locks, the real registration of a copied .vmx.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.esxi.conftest import EsxiPair
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.engine.planner import PREDELTA_FRESH_S
from vmigrate_lib.lab.verify import verify_copy
from vmigrate_lib.lab.workload import WorkloadSpec

FAST = ("--shutdown-time", "1s", "--boot-time", "1s")


def _cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args, "-p",
                           str(path)], cwd=path.parent, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode,ssh_mode", [("snapshot-delta", "relay"), ("hash", "relay"),
                                           ("snapshot-delta", "direct")])
def test_seed_deltas_cutover_esxi_to_esxi(esxi_pair: EsxiPair, mode: str,
                                          ssh_mode: str) -> None:
    lab = esxi_pair.lab
    lab.host().set_workload("alice", WorkloadSpec(rate_mb_s=0.2))
    lab.host().power_on("alice")
    path = lab.workdir / "esxi.yaml"
    raw = esxi_pair.params(change_tracking=mode)
    raw["dest_name"] = "bob"
    raw["cutover"] = {"ready": "power-and-probes", "allow_hard_poweroff": True,
                      "probe_command": "true"}
    if ssh_mode == "direct":  # how host a reaches host b, as paths on host a
        b_host = esxi_pair.b.host
        raw["source"] = esxi_pair.a.host_params(
            ssh_mode="direct", ssh_direct_key=b_host.key_path,
            ssh_direct_known_hosts=b_host.known_hosts_path)
    path.write_text(yaml.safe_dump(raw))
    r = _cli(path, "preflight")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"-> [datastore1]: {ssh_mode} (requested)" in r.stdout, r.stdout
    r = _cli(path, "sync", "--cycles", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    # hash cycles give the planner no dirty rate ("run at least one delta cycle"): the
    # go/no-go cannot predict, so the operator forces it (the snapshot-delta cycles count)
    r = _cli(path, "cutover", *FAST, *(["--force"] if mode == "hash" else []))
    assert r.returncode == 0, r.stdout + r.stderr
    a, b = lab.host(), lab.host("esx-b")
    assert a.power_state("alice") == PowerState.OFF and b.power_state("bob") == PowerState.ON
    st = b.guest_status("bob")
    assert st is not None and st["boot"]["ok"], st  # Bob's boot check read his disk
    rep = verify_copy(b.vm_dir("bob") / "bob-flat.vmdk", a.ack_path("alice", 2000), exact=False)
    assert rep.ok and rep.acked > 0, rep.problems()
    assert a.list_snapshots("alice") == []


KILLER = Path(__file__).resolve().parents[1] / "cutover" / "cutover_killer.py"


@pytest.mark.timeout(1200)
def test_killed_cutover_resumes_then_rollback_esxi_to_esxi(esxi_pair: EsxiPair) -> None:
    """snapshot-delta, esxi to esxi: the cutover killed (os._exit, as kill -9) after its
    predelta cycle (which kept its snapshot on Alice) and again before register
    (Alice off, final cycle done); each re-run resumes, and Bob ends with every
    acknowledged block and Alice with no snapshot.  Then ``rollback`` gives Alice
    back, running, and unregisters Bob."""
    lab = esxi_pair.lab
    lab.host().set_workload("alice", WorkloadSpec(rate_mb_s=0.2))
    lab.host().power_on("alice")
    path = lab.workdir / "esxi.yaml"
    raw = esxi_pair.params(change_tracking="snapshot-delta")
    raw["dest_name"] = "bob"
    raw["cutover"] = {"ready": "power-and-probes", "allow_hard_poweroff": True,
                      "probe_command": "true"}
    path.write_text(yaml.safe_dump(raw))
    r = _cli(path, "sync", "--cycles", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    a, b = lab.host(), lab.host("esx-b")
    # the predelta cycle runs only when the last snapshot is older than PREDELTA_FRESH_S:
    # wait past it, so that the kill below always lands after a predelta that kept c3
    time.sleep(PREDELTA_FRESH_S + 2.0)
    for spec in ("after:predelta", "before:register"):
        k = subprocess.run([sys.executable, str(KILLER), spec, "cutover", *FAST, "-p",
                            str(path)], cwd=path.parent, capture_output=True, text=True,
                           timeout=600)
        assert k.returncode == 137, k.stdout + k.stderr
        if spec == "after:predelta":
            assert [s.name.rpartition("-")[2] for s in a.list_snapshots("alice")] == ["c3"]
    r = _cli(path, "cutover", *FAST)
    assert r.returncode == 0, r.stdout + r.stderr
    assert a.list_snapshots("alice") == [] and b.power_state("bob") == PowerState.ON
    rep = verify_copy(b.vm_dir("bob") / "bob-flat.vmdk", a.ack_path("alice", 2000), exact=False)
    assert rep.ok and rep.acked > 0, rep.problems()
    r = _cli(path, "rollback", "--yes-lose-bob-writes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert a.power_state("alice") == PowerState.ON and not b.vm_exists("bob")


@pytest.mark.timeout(1200)
def test_both_runbooks_esxi_to_esxi(esxi_pair: EsxiPair) -> None:
    """The sync runbook then the cutover runbook (papermill, evidence folders), from one
    params file, snapshot-delta, esxi to esxi: Bob runs with every acknowledged block,
    Alice is off with no snapshot.  The cutover is forced: two runbook cycles give the
    planner too little to predict from (recorded as forced)."""
    lab = esxi_pair.lab
    lab.host().set_workload("alice", WorkloadSpec(rate_mb_s=0.2))
    lab.host().power_on("alice")
    path = lab.workdir / "esxi.yaml"
    raw = esxi_pair.params(change_tracking="snapshot-delta", max_cycles=2)
    raw.update(dest_name="bob", change_id="CHG-ESXI", operator="test")
    raw["cutover"] = {"ready": "power-and-probes", "allow_hard_poweroff": True,
                      "probe_command": "true"}
    path.write_text(yaml.safe_dump(raw))
    for runbook, extra in (("sync", ()), ("cutover", ("--force",))):
        r = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "--quiet", "run",
                            runbook, *extra, "-p", str(path)], cwd=path.parent,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "evidence: " in r.stdout
    a, b = lab.host(), lab.host("esx-b")
    assert a.power_state("alice") == PowerState.OFF and b.power_state("bob") == PowerState.ON
    assert a.list_snapshots("alice") == []
    rep = verify_copy(b.vm_dir("bob") / "bob-flat.vmdk", a.ack_path("alice", 2000), exact=False)
    assert rep.ok and rep.acked > 0, rep.problems()
