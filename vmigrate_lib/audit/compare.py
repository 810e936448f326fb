"""Compare archived runs: one row per evidence folder, read from its sealed files only.

A row is ``verified`` only if everything ``vmigrate evidence verify`` checks holds: the
files match the manifest, the workspace journal (when the archive sits in its
workspace) recorded that very manifest, and a signature, if present, matches it.  A
manifest alone proves nothing against someone who edits a file and re-hashes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from .evidence import MANIFEST, EvidenceTampered, check_chain, verify
from .plots import new_figure
from .signing import check_signature
from .tables import cycles_frame, read_journal


def find_runs(root: Path) -> list[Path]:
    """Every evidence folder (one holding a manifest) under ``root``, oldest first."""
    return sorted(p.parent for p in Path(root).rglob(MANIFEST))


def integrity(folder: Path) -> tuple[bool, str]:
    """Whether the archive is proven unchanged since it was sealed, and how (one line)."""
    report = verify(folder)
    if not report.ok:
        return False, "; ".join(report.problems()[:3])
    try:
        chain = check_chain(folder)
        signature = check_signature(folder)
    except EvidenceTampered as exc:
        return False, exc.message
    chained = "chained to the journal" if chain.status == "chained" else "no journal beside it"
    signed = {"unsigned": "unsigned", "valid": f"signed by {signature.signer}"}.get(
        signature.status, "signed (signer not checked)")
    return True, f"manifest ok, {chained}, {signed}"


def runs_frame(folders: Iterable[Path]) -> pd.DataFrame:
    """Status, integrity, cycles, throughput and downtime of each archived run."""
    rows: list[dict[str, Any]] = []
    for folder in folders:
        folder = Path(folder)
        run = json.loads((folder / "run.json").read_text())
        result = run.get("result") or {}
        cycles = _run_cycles(folder)
        ok: pd.DataFrame = cycles if cycles.empty else cycles[cycles["status"] == "ok"]
        verified, proof = integrity(folder)
        rows.append({
            "run": folder.name,
            "runbook": run.get("runbook"),
            "status": run.get("status"),
            "verified": verified,
            "proof": proof,
            "change_id": run.get("change_id"),
            "operator": run.get("operator"),
            "duration_s": run.get("duration_s"),
            "cycles": len(ok),
            "median_throughput_MBps": (float(ok["throughput_Bps"].median()) / 1e6
                                       if not ok.empty else None),
            "converged": result.get("converged"),
            "predicted_downtime_s": result.get("predicted_downtime_s",
                                               (result.get("prediction") or {})
                                               .get("predicted_downtime")),
            "actual_downtime_s": result.get("downtime_s"),
            "error": (run.get("error") or {}).get("message"),
        })
    return pd.DataFrame(rows)


def _run_cycles(folder: Path) -> pd.DataFrame:
    """The cycles this run made: from the journal slice it archived (``journal.jsonl``: only
    what the run appended), not ``audit/cycles.csv``, which shows the whole migration so
    far (a cutover's table lists the sync's cycles too, and counting those in every run
    counted them twice).  Archives without the slice: the CSV."""
    if (folder / "journal.jsonl").exists():
        return cycles_frame(read_journal(folder / "journal.jsonl"))
    cycles_csv = folder / "audit" / "cycles.csv"
    return pd.read_csv(cycles_csv) if cycles_csv.exists() else pd.DataFrame()


def downtime_figure(runs: pd.DataFrame) -> Figure:
    """Predicted vs actual downtime of each cutover run."""
    fig = new_figure()
    ax = fig.add_subplot()
    cut = runs[runs["runbook"] == "cutover"] if not runs.empty else runs
    if cut.empty:
        ax.text(0.5, 0.5, "no cutover runs", ha="center", va="center", transform=ax.transAxes)
    else:
        x = range(len(cut))
        ax.bar([i - 0.2 for i in x], cut["predicted_downtime_s"].astype(float), width=0.4,
               label="predicted")
        ax.bar([i + 0.2 for i in x], cut["actual_downtime_s"].astype(float), width=0.4,
               label="actual")
        ax.set_xticks(list(x), [r[:16] for r in cut["run"]], rotation=20, fontsize="small")
        ax.legend()
    ax.set_ylabel("seconds")
    ax.set_title("Cutover downtime per run: predicted vs actual")
    return fig
