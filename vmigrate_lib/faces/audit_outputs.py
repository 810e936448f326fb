"""The run's plain audit files (cycles/steps CSV, the four figures) and the MIME types of
the result a runbook displays: what the notebook face writes and the archive and the
executed-notebook reader read, in a module of their own so that neither imports the
notebook face (which drives the engine and imports the hand-run archive)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..audit import plots
from ..audit.dashboard import ipd, readable_cycles, readable_steps
from ..audit.tables import cutover_summary, cycles_frame, read_journal, save_frames, steps_frame
from ..engine.workspace import Workspace

#: MIME type of the machine-readable result a runbook displays; the runner reads it.
RESULT_MIME = "application/vnd.vmigrate.result+json"
#: scrapbook's MIME type for a JSON scrap (``sb.read_notebook(path).scraps`` reads it).
SCRAP_MIME = "application/scrapbook.scrap.json+json"


@dataclass
class AuditOutputs:
    folder: Path
    files: list[Path]


def audit_folder(workspace: Path) -> Path:
    """``<workspace>/audit``: the plain CSV/PNG copies a hand run leaves."""
    return Path(workspace) / "audit"


def save_audit(workspace: Path, *, budget: float | None = None,
               actual_downtime: float | None = None, show: bool = True,
               folder: Path | None = None) -> AuditOutputs:
    """Write cycles/steps CSV and the four figures to ``<workspace>/audit`` (or ``folder``)
    and display them: the evidence keeps plain files beside every widget."""
    records = read_journal(Workspace(workspace).journal.path)
    done = cutover_summary(records)
    if actual_downtime is None:
        actual_downtime = done.get("actual_downtime_s") if done else None
    cycles = cycles_frame(records)
    steps = steps_frame(records)
    folder = Path(folder) if folder is not None else audit_folder(workspace)
    figs = {
        "delta_bytes": plots.delta_bytes(cycles),
        "phase_durations": plots.phase_durations(cycles),
        "throughput": plots.throughput(cycles),
        "downtime": plots.downtime(cycles, budget=budget, actual=actual_downtime,
                                   go_no_go=done.get("predicted_downtime_s") if done else None),
    }
    files = save_frames({"cycles": cycles, "steps": steps}, folder)
    files += plots.save_figures(figs, folder)
    if show:
        d = ipd()
        d.display(d.Markdown(f"**Cycles** (every column: `{folder / 'cycles.csv'}`)"))
        d.display(readable_cycles(cycles))
        d.display(d.Markdown(f"**Steps** (every column: `{folder / 'steps.csv'}`)"))
        d.display(readable_steps(steps))
        for name in figs:
            d.display(d.Image(filename=str(folder / f"{name}.png")))
    return AuditOutputs(folder, files)
