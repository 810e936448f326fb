"""A sync killed mid-copy resumes: no snapshot left behind, nothing lost, identical."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.engine.state_watch import kill_sync_when, wait_state
from tests.fsproof import files_equal
from vmigrate_lib.control.host import VMIGRATE_SNAPSHOT_PREFIX

MiB = 1 << 20


def _state(lab) -> dict:
    try:
        return json.loads((lab.workdir / "ws" / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _kill_when_checkpointed(lab, params, min_offset: int, disks: int = 1) -> dict:
    """Start `vmigrate sync` and SIGKILL it once ``disks`` disks have a durable checkpoint."""
    def checkpointed(state: dict) -> bool:
        ip = state.get("in_progress") or {}
        started = [v for v in (ip.get("checkpoints") or {}).values() if min_offset <= v]
        return len(started) >= disks and not ip.get("committed")

    return kill_sync_when(lab.workdir, params, 5, checkpointed)


@pytest.mark.parametrize("parallel", [1, 2])
def test_killed_seed_resumes_from_checkpoint_and_ends_identical(make_lab, parallel: int) -> None:
    """Killed mid-seed, one disk at a time or both disks at once: each resumes on its own."""
    lab = make_lab(disk_sizes=(384 * MiB, 256 * MiB), fill=1.0, rate_mb_s=2.0)
    params = lab.write_params(sync={"checkpoint_bytes": "8MiB", "certify": "full",
                                    "parallel_disks": parallel})
    ip = _kill_when_checkpointed(lab, params, 8 * MiB, disks=parallel)
    killed_at = ip["checkpoints"]["2000"]
    assert ip["kind"] == "seed" and 0 < killed_at < 384 * MiB
    if parallel == 2:  # both disks were in flight when the process died
        assert 0 < ip["checkpoints"].get("2001", 0) < 256 * MiB

    # the killed run could not clean up: its snapshot is still on Alice
    snaps = lab.host().list_snapshots("alice")
    assert [s.name for s in snaps] == [ip["snapshot_name"]]

    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    cycles = [json.loads(line) for line in (lab.workdir / "ws" / "journal.jsonl").open()]
    resumed = [c for c in cycles if c["type"] == "cycle"][-1]
    assert resumed["resumed"] and resumed["kind"] == "seed"
    disk = resumed["disks"][0]
    assert disk["resumed_from"] >= killed_at
    # it copied the rest plus what changed meanwhile, not the whole disk again
    assert disk["bytes_changed"] < 384 * MiB - killed_at + 64 * MiB
    if parallel == 2:
        assert resumed["disks"][1]["resumed_from"] > 0
    assert resumed["certify"]["result"] == "identical"
    assert any(c["type"] == "stale_snapshot_removed" for c in cycles)
    assert not [s for s in lab.host().list_snapshots("alice")
                if s.name.startswith(VMIGRATE_SNAPSHOT_PREFIX)]

    # stop the guest and prove the whole copy byte-identical after one last cycle
    lab.stop_guest()
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    for name in ("alice-flat.vmdk", "alice_1-flat.vmdk"):
        assert files_equal(lab.ds_dir("esx-a") / "alice" / name,
                           lab.ds_dir("esx-b") / "alice" / name), name


def test_interrupt_removes_snapshot_and_keeps_state(make_lab) -> None:
    lab = make_lab(disk_sizes=(256 * MiB,), fill=1.0, power_on=False)
    params = lab.write_params(sync={"checkpoint_bytes": "4MiB"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmigrate_lib.faces.cli", "sync", "-p", str(params)],
        cwd=lab.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_state(lab.workdir / "ws" / "state.json",
               lambda s: bool((s.get("in_progress") or {}).get("checkpoints")),
               running=lambda: proc.poll() is None)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert lab.host().list_snapshots("alice") == []
    ip = _state(lab)["in_progress"]
    assert ip["snapshot_removed"] and not ip["committed"]
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    assert files_equal(lab.ds_dir("esx-a") / "alice" / "alice-flat.vmdk",
                       lab.ds_dir("esx-b") / "alice" / "alice-flat.vmdk")


@pytest.mark.timeout(300)
def test_interrupted_runbook_removes_snapshot_and_keeps_state(make_lab) -> None:
    """``vmigrate run sync``: the copy runs in the runbook's kernel, which a signal to the
    CLI does not reach; SIGTERM mid-seed still ends the cycle on the engine's clean path
    (snapshot removed, state kept, the cycle journaled as interrupted), and a re-run
    resumes to an identical copy.  The lab removes a snapshot at once, so this held
    before the interrupt was passed on too (jupyter_client's shutdown interrupts first);
    a clean-up longer than its 5 s wait is tests/runbooks/test_interrupt.py's case."""
    lab = make_lab(disk_sizes=(256 * MiB,), fill=1.0, power_on=False)
    params = lab.write_params(sync={"checkpoint_bytes": "4MiB"}, change_id="CHG-T-1",
                              operator="pytest", downtime_budget="2m")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmigrate_lib.faces.cli", "run", "sync", "-p", str(params)],
        cwd=lab.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    wait_state(lab.workdir / "ws" / "state.json",
               lambda s: bool((s.get("in_progress") or {}).get("checkpoints")),
               running=lambda: proc.poll() is None, timeout=120)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert "sync runbook FAILED: the run was interrupted" in out, out[-3000:]
    assert lab.host().list_snapshots("alice") == []
    ip = _state(lab)["in_progress"]
    assert ip["snapshot_removed"] and not ip["committed"]
    ended = [json.loads(ln) for ln in (lab.workdir / "ws" / "journal.jsonl").read_text()
             .splitlines() if '"type": "cycle_' in ln]
    assert [(c["type"], c["status"]) for c in ended] == [("cycle_failed", "interrupted")]
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    assert files_equal(lab.ds_dir("esx-a") / "alice" / "alice-flat.vmdk",
                       lab.ds_dir("esx-b") / "alice" / "alice-flat.vmdk")
