"""A lab for waves: two source hosts (esx-a, esx-c), two destinations (esx-b, esx-d), and
tiny VMs with writing guests, plus the wave file that moves them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.engine.state import CutoverRecord
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.lab.layout import LabLayout
from vmigrate_lib.lab.lifecycle import create_vm, lab_up
from vmigrate_lib.lab.verify import verify_copy
from vmigrate_lib.lab.workload import WorkloadSpec
from vmigrate_lib.modes import CutoverStatus

SOURCES = ("esx-a", "esx-c")
DESTINATIONS = ("esx-b", "esx-d")
DISK = 8 << 20  #: one 8 MiB disk per VM: the wave's behaviour, not bulk copying, is tested


def build_lab(root: Path, vms: list[tuple[str, str]], *, rate_mb_s: float = 0.05) -> None:
    """``vms`` as (name, source host): created and powered on, each writing its workload."""
    lab_up(root, hosts=SOURCES + DESTINATIONS, vm="")
    layout = LabLayout(root.resolve())
    for i, (name, src) in enumerate(vms):
        create_vm(layout, src, "datastore1", name, [DISK], fill=0.25, seed=i + 1,
                  workload=WorkloadSpec(rate_mb_s=rate_mb_s, seed=i + 1, ack_interval=0.2))
        LabHost(root, src).power_on(name)


def wave_file(path: Path, root: Path, workspaces: Path, vms: list[dict[str, Any]],
              **top: Any) -> Path:
    """A wave file for ``vms`` on the lab at ``root`` (absolute paths: tests run anywhere)."""
    data: dict[str, Any] = {
        "wave": "t", "workspaces": str(workspaces),
        "template": {
            "change_id": "CHG-WAVE-T", "operator": "wave-test", "hosts": "lab",
            "downtime_budget": "60s",
            "source": {"type": "lab", "lab_root": str(root)},
            "destination": {"type": "lab", "lab_root": str(root), "datastore": "datastore1"},
            "sync": {"max_cycles": 3, "target_interval": "1s"},
            "cutover": {"expected_shutdown": "2s", "expected_boot": "2s", "max_sync_age": "30m"},
        },
        "estimate": {"dirty_rate": "200KB/s", "interval": "5s", "cycle_overhead": "3s"},
        "limits": {"in_flight": 4, "per_source_host": 2, "per_destination_host": 2},
        "vms": vms, **top,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bob_problems(root: Path, vm: str, src: str, dst: str, dest_name: str) -> list[str]:
    """Every block the source guest acknowledged is on the copy's disks (the copy may have
    written newer ones since it booted: sequence numbers at least Alice's)."""
    s, d = LabHost(root, src), LabHost(root, dst)
    cfg = d.config(dest_name)
    out: list[str] = []
    for disk in cfg.disks:
        rep = verify_copy(d.vm_dir(dest_name) / disk.file, s.ack_path(vm, disk.key), exact=False)
        if not rep.ok or rep.acked == 0:
            out.append(f"{vm} disk {disk.key}: {rep.problems()[:3]} (acked {rep.acked})")
    return out


def done_vm_wave(tmp_path: Path) -> Path:
    """A one-VM wave file (app1, esx-a to esx-b; workspaces in ``tmp_path/ws``) whose VM's
    workspace is cut over (:func:`cut_over_workspace`)."""
    path = wave_file(tmp_path / "wave.yaml", tmp_path / "lab", tmp_path / "ws",
                     [{"name": "app1", "source": "esx-a", "destination": "esx-b",
                       "group": "default"}])
    cut_over_workspace(tmp_path / "ws" / "app1", "app1")
    return path


def cut_over_workspace(root: Path, vm: str, status: CutoverStatus = "done",
                       started: float | None = None) -> None:
    """A VM's workspace as a cutover attempt that ended ``status`` leaves it (state.json
    through the engine's classes): by default cut over 5 s ago, 4.5 s of downtime measured
    against 6 s predicted; ``rolled_back`` as failed probes leave it."""
    t0 = started if started is not None else time.time() - 60
    ws = Workspace(root)
    with ws:
        ws.init({"vm": vm, "source_host": "esx-a", "dest_host": "esx-b", "dest_name": vm})
        ws.state.cutover = CutoverRecord(
            attempt=1, status=status, step=status, started=t0, ended=time.time(),
            measured={"downtime_s": 4.5} if status == "done" else {},
            prediction={"predicted_downtime": 6.0},
            reason=None if status == "done" else "probes failed: app check")
        ws.save()


def wave_story(wave_dir: Path, lines: int = 12) -> str:
    """The wave's journal tail and each VM log's tail: what a failed or stuck wave test
    prints, since CI keeps no files."""
    out = []
    journal = wave_dir / "journal.jsonl"
    if journal.exists():
        out += ["journal:", *journal.read_text().splitlines()[-3 * lines:]]
    for log in sorted((wave_dir / "logs").glob("*.log")):
        out += [f"{log.name}:", *log.read_text(errors="replace").splitlines()[-lines:]]
    return "\n".join(out)


def kernel_crosstalk(wave_dir: Path) -> list[str]:
    """VM log lines that show a runbook's client reaching another runbook's kernel."""
    return [f"{log.name}: {ln.strip()}" for log in sorted((wave_dir / "logs").glob("*.log"))
            for ln in log.read_text(errors="replace").splitlines()
            if "Invalid Signature" in ln or "Kernel didn't respond" in ln]
