"""Tables of a migration, built from its journal (the only source of truth).

Widgets, plots and the evidence archive are all views of these frames, so a
run re-read a week later shows exactly what the operator saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.cycle_records import CYCLE_RECORD_TYPES, cycle_records
from ..engine.workspace import journal_records
from ..errors import OperationError

#: Journal record types that describe sync cycles, not steps.
CYCLE_TYPES = frozenset(CYCLE_RECORD_TYPES)
#: Journal record type the runbooks write after each cycle (planner's verdict).
PREDICTION_TYPE = "prediction"
#: Phases of a cycle, in the order they happen.
PHASES = ("snapshot", "query", "hash", "copy", "certify", "cleanup")

CYCLE_COLUMNS = [
    "cycle", "kind", "status", "started", "duration_s", "interval_s", "bytes_changed",
    "bytes_sent", "bytes_read", "bytes_zero", "extents", "throughput_Bps", "certify",
    "resumed", "reconnects", *[f"{p}_s" for p in PHASES], "predicted_downtime_s", "budget_s", "converged",
]
STEP_COLUMNS = ["time", "type", "attempt", "step", "status", "duration_s", "detail"]


class AuditError(OperationError):
    """The journal or an audit output could not be read or written."""

    default_hint = "check the workspace folder (journal.jsonl) and its permissions"


def read_journal(path: Path, since: int = 0) -> list[dict[str, Any]]:
    """Records of a journal file from byte offset ``since`` (a torn last line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read()
    except OSError as exc:
        raise AuditError(f"cannot read journal {path}: {exc.strerror}", path=str(path)) from exc
    return list(journal_records(data.splitlines()))


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    return pd.Timestamp(float(value), unit="s", tz="UTC")


def predictions(records: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """The last planner prediction recorded per cycle number."""
    out: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.get("type") == PREDICTION_TYPE and r.get("cycle") is not None:
            out[int(r["cycle"])] = dict(r)
    return out


def cycles_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per cycle (ok or failed), with phase durations and the prediction."""
    recs = list(records)
    preds = predictions(recs)
    rows: list[dict[str, Any]] = []
    for c in cycle_records(r for r in recs if r.get("type") in CYCLE_TYPES):
        pred = preds.get(c.number, {})
        rows.append({
            "cycle": c.number,
            "kind": c.kind,
            "status": c.status,
            "started": _ts(c.started or None),
            "duration_s": c.duration,
            "interval_s": c.interval,
            "bytes_changed": c.bytes_changed,
            "bytes_sent": c.bytes_sent,
            "bytes_read": c.bytes_read,
            "bytes_zero": c.bytes_zero,
            "extents": c.extents,
            "throughput_Bps": c.throughput,
            "certify": c.certify_result,
            "resumed": c.resumed,
            "reconnects": c.reconnects,
            **{f"{p}_s": c.phase(p) for p in PHASES},
            "predicted_downtime_s": pred.get("predicted_downtime"),
            "budget_s": pred.get("budget"),
            "converged": pred.get("converged"),
        })
    df = pd.DataFrame(rows, columns=CYCLE_COLUMNS)
    return df.sort_values("cycle", kind="stable").reset_index(drop=True) if rows else df


_STEP_SKIP = {"ts", "type", "step", "name", "status", "duration", "seconds", "start", "end",
              "attempt"}
#: Journal types that are runbook plumbing or per-cycle data, not steps.
_NOT_STEPS = CYCLE_TYPES | {PREDICTION_TYPE, "cutover_measured"}


def _detail(rest: Mapping[str, Any]) -> str:
    detail = json.dumps(dict(rest), sort_keys=True, default=str)
    return detail if len(detail) <= 300 else detail[:297] + "..."


def steps_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per cutover step (its started/done/failed records merged) and per other
    journal event (preflight, runbook, warnings, rollback, archives), in time order."""
    rows: list[dict[str, Any]] = []
    open_steps: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in records:
        kind = str(r.get("type", ""))
        if kind in _NOT_STEPS:
            continue
        rest = {k: v for k, v in r.items() if k not in _STEP_SKIP}
        if kind == "step":
            key = (r.get("attempt"), r.get("name"))
            row = open_steps.get(key)
            if row is None or r.get("status") == "started":
                row = {"time": _ts(r.get("start", r.get("ts"))), "type": "step",
                       "attempt": r.get("attempt"), "step": r.get("name", ""),
                       "status": "", "duration_s": None, "detail": ""}
                open_steps[key] = row
                rows.append(row)
            row["status"] = r.get("status", "")
            if r.get("end") is not None and r.get("start") is not None:
                row["duration_s"] = float(r["end"]) - float(r["start"])
            if rest:
                row["detail"] = _detail(rest)
            continue
        duration = r.get("duration", r.get("seconds"))
        rows.append({
            "time": _ts(r.get("ts")),
            "type": kind,
            "attempt": r.get("attempt"),
            "step": r.get("step", r.get("name", "")) or "",
            "status": r.get("status", "") or "",
            "duration_s": float(duration) if isinstance(duration, (int, float)) else None,
            "detail": _detail(rest),
        })
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def cutover_summary(records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Measured and predicted downtime of the last finished cutover (None if none)."""
    last: dict[str, Any] | None = None
    for r in records:
        if r.get("type") == "cutover_done":
            measured = r.get("measured") or {}
            predicted = r.get("predicted") or {}
            last = {
                "attempt": r.get("attempt"),
                "actual_downtime_s": measured.get("downtime_s"),
                "predicted_downtime_s": predicted.get("predicted_downtime"),
                **{f"actual_{k}": v for k, v in measured.items() if k != "downtime_s"},
                "forced": r.get("forced", False),
                "resumed": r.get("resumed", False),
            }
    return last


def save_frames(frames: Mapping[str, pd.DataFrame], folder: Path) -> list[Path]:
    """Write each frame as ``<name>.csv`` (plain evidence, readable without Python)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, df in frames.items():
            p = folder / f"{name}.csv"
            df.to_csv(p, index=False)
            paths.append(p)
    except OSError as exc:
        raise AuditError(f"cannot write audit tables to {folder}: {exc.strerror}",
                         folder=str(folder)) from exc
    return paths
