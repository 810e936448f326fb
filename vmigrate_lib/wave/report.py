"""The wave report: every VM's outcome and evidence in one table, and the notebook that
shows it, executed with papermill and sealed like the runbooks' evidence.

Read-only over what the wave and the VMs' workspaces recorded: the wave's state and
journal (phases, times), ``plan.json`` (what ``wave plan`` predicted), each workspace's
journal (bytes copied, cutover measured against predicted).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..audit.evidence import private_dirs, sha256_file
from ..engine.cycle_records import cycle_records
from ..engine.workspace import Journal
from .schedule import peak_in_flight
from .spec import WaveSpec
from .state import OVER, load


@dataclass(frozen=True)
class Flight:
    vm: str
    source: str
    destination: str
    start: float
    end: float


def flights(journal: Path) -> list[Flight]:
    """Each VM's time in flight from the wave journal: its first ``syncing`` to its end
    (now, for a VM not over yet)."""
    first: dict[str, dict[str, Any]] = {}
    end: dict[str, float] = {}
    for r in Journal(journal).records("vm_phase"):
        vm = str(r.get("vm"))
        if r.get("status") == "syncing" and vm not in first:
            first[vm] = r
        if r.get("status") in OVER:
            end[vm] = float(r["ts"])
    return [Flight(vm, str(r["source"]), str(r["destination"]), float(r["ts"]),
                   end.get(vm, time.time())) for vm, r in first.items()]


def peaks(journal: Path) -> dict[str, int]:
    """Most VMs in flight at once: ``total``, ``src:HOST`` and ``dst:HOST``."""
    fl = flights(journal)
    ivs = [("total", f.start, f.end) for f in fl]
    ivs += [(f"src:{f.source}", f.start, f.end) for f in fl]
    ivs += [(f"dst:{f.destination}", f.start, f.end) for f in fl]
    return peak_in_flight(ivs)


def vm_rows(spec: WaveSpec) -> list[dict[str, Any]]:
    """One row per VM: status, downtime predicted vs measured, bytes copied, window met."""
    state = load(spec.wave_dir / "state.json")
    plan_path = spec.wave_dir / "plan" / "plan.json"
    planned = ({v["vm"]: v for v in json.loads(plan_path.read_text())["vms"]}
               if plan_path.exists() else {})
    rows = []
    for t in spec.tasks:
        run = state.vms.get(t.name) if state else None
        ws = Path(spec.vm_params[t.name]["workspace"])
        cycles = cycle_records(Journal(ws / "journal.jsonl").records("cycle"))
        window = spec.plan(state.started_at if state else 0.0).group(t.group).window
        ended = (run.ended - state.started_at) if run and run.ended and state else None
        rows.append({
            "vm": t.name, "group": t.group, "pair": str(t.pair),
            "status": run.status if run else "not run", "error": run.error if run else "",
            "predicted_downtime_s": run.predicted_s if run else None,
            "measured_downtime_s": run.downtime_s if run else None,
            "planned_downtime_s": planned.get(t.name, {}).get("downtime_s"),
            "bytes_copied": sum(c.bytes_changed for c in cycles if c.ok),
            "cycles": len(cycles), "warm_cycles": run.warm_cycles if run else 0,
            "window_met": (run is not None and run.status == "done" and ended is not None
                           and window.start <= ended <= window.end),
            "evidence": run.evidence if run else [],
        })
    return rows


def summary(spec: WaveSpec) -> dict[str, Any]:
    """Planned vs measured wave duration and the peaks in flight against the limits."""
    state = load(spec.wave_dir / "state.json")
    plan_path = spec.wave_dir / "plan" / "plan.json"
    planned = json.loads(plan_path.read_text()).get("makespan_s") if plan_path.exists() else None
    ends = [v.ended for v in state.vms.values() if v.ended] if state else []
    lim = spec.limits
    return {
        "wave": spec.name, "planned_s": planned,
        "measured_s": (max(ends) - state.started_at) if ends and state else None,
        "peaks": peaks(spec.wave_dir / "journal.jsonl"),
        "limits": {"in_flight": lim.in_flight, "per_source_host": lim.per_source,
                   "per_destination_host": lim.per_destination},
    }


def run_report(spec: WaveSpec, kernel_name: str | None = None) -> Path:
    """Execute ``runbooks/wave-report.ipynb`` into ``<wave>/report/<time>/``, export HTML,
    seal it (manifest, read-only) and note it in the wave's journal."""
    import papermill as pm

    from ..faces.papermill_runner import history_off_args, pick_kernel, runbooks_dir
    from ..faces.run_archive import export_html, seal

    root = private_dirs(spec.wave_dir / "report")
    folder = root / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder.mkdir(mode=0o700)
    source = runbooks_dir() / "wave-report.ipynb"
    if not source.exists():  # an installed package whose runbooks lack it
        source = Path(str(files("vmigrate_lib.runbooks"))) / "wave-report.ipynb"
    kernel = pick_kernel(kernel_name)
    nb = folder / "wave-report.ipynb"
    started, status, error = time.time(), "ok", None
    try:
        pm.execute_notebook(str(source), str(nb), parameters={"wave_file": str(spec.path)},
                            kernel_name=kernel, cwd=str(spec.wave_dir), progress_bar=False,
                            extra_arguments=history_off_args(kernel))
    except Exception as exc:  # a failed report is archived as failed
        status, error = "failed", {"error": type(exc).__name__, "message": str(exc)[:500]}
    export_html(nb, folder / "wave-report.html")
    record = {"runbook": "wave-report", "status": status, "started": started,
              "ended": time.time(), "error": error, "wave_file": str(spec.path)}
    _, manifest, _ = seal(folder, record, {})
    Journal(spec.wave_dir / "journal.jsonl").append(
        "evidence_archived", runbook="wave-report", status=status, folder=str(folder),
        manifest_sha256=sha256_file(manifest))
    return folder
