"""What this wave's own runs measured, for its next plan: the runbook's fixed cost.

The plan charges each runbook run a fixed cost beyond its copies (kernel start, imports,
preflight, audit, archive: ``estimate.runbook_overhead``, 60 s unless the file says).  It
is a property of the operator's machine and hosts, not of the VM, so a default is either
too slow or too fast: the lab wave here planned 391 s for a run that took 120 s.  Once
VMs of the wave have run, their runbooks measured it: a sync phase's time (wave journal,
``syncing`` to its next phase) minus the cycles its workspace journal records in it, and
a cutover phase's time minus the downtime it measured.  ``wave plan`` (a resumed wave,
or the same wave file planned again) then uses their median.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..engine.cycle_records import CycleRecord, cycle_records
from ..engine.workspace import Journal
from .spec import WaveSpec
from .state import load


@dataclass(frozen=True)
class Overhead:
    seconds: float  #: median of the samples
    samples: int

    def note(self) -> str:
        return (f"runbook overhead {self.seconds:.1f} s: the median of {self.samples} runbook "
                "runs this wave measured (phase time minus its copies and downtime)")


def _phases(journal: Path) -> tuple[dict[str, list[tuple[float, str]]], list[float]]:
    """Each VM's phases in order, and when the wave run was resumed (a phase across a
    resume also holds the time the run was down: not a sample)."""
    out: dict[str, list[tuple[float, str]]] = {}
    resumed: list[float] = []
    for r in Journal(journal).records():
        if r.get("type") == "wave_resumed":
            resumed.append(float(r["ts"]))
        elif r.get("type") == "vm_phase":
            out.setdefault(str(r.get("vm")), []).append((float(r["ts"]), str(r.get("status"))))
    return out, resumed


def _copies(cycles: list[CycleRecord], begin: float, end: float) -> float:
    """Seconds the VM's cycles took that started within [begin, end]."""
    return sum(c.duration for c in cycles if begin <= c.started <= end)


def samples(spec: WaveSpec) -> list[float]:
    """One fixed cost per sync or cutover phase that ended (never below 0)."""
    state = load(spec.wave_dir / "state.json") if (spec.wave_dir / "state.json").exists() else None
    out: list[float] = []
    phases, resumed = _phases(spec.wave_dir / "journal.jsonl")
    for vm, seq in phases.items():
        params: Any = spec.vm_params.get(vm)
        if params is None:
            continue
        ws = Path(params["workspace"])  # its journal read once, for all its phases
        cycles = cycle_records(Journal(ws / "journal.jsonl").records("cycle"))
        for (t0, status), (t1, nxt) in pairwise(seq):
            if any(t0 < r < t1 for r in resumed):
                continue
            if status == "syncing":
                out.append(max(0.0, (t1 - t0) - _copies(cycles, t0, t1)))
            elif status == "cutover" and state is not None:
                down = state.vms[vm].downtime_s if vm in state.vms else None
                if down is not None and nxt == "done":
                    out.append(max(0.0, (t1 - t0) - float(down)))
    return out


def measured_overhead(spec: WaveSpec) -> Overhead | None:
    got = samples(spec)
    return Overhead(statistics.median(got), len(got)) if got else None
