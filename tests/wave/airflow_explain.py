"""What the Airflow wave test reads to explain itself: which cutovers a kill cuts mid-way,
and, when a task is not in its expected state, each try with its task log's tail and the
VM's journal tails (the run's files may be gone by the time someone reads the report)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path


def cutting_over(ws: Path, vms: tuple[str, ...]) -> list[str]:
    """Those of ``vms`` whose cutover is past its go/no-go (Alice asked to stop) or done,
    read from their workspaces' ``state.json`` (written atomically): a kill while such a
    VM's task runs cuts its runbook mid-way or before its seal, not a task still starting."""
    out = []
    for vm in vms:
        with contextlib.suppress(OSError, ValueError):
            co = json.loads((ws / vm / "state.json").read_text()).get("cutover") or {}
            if co.get("status") == "done" or (
                    co.get("status") == "running" and "shutdown" in (co.get("steps") or {})):
                out.append(vm)
    return out


def tries(db: Path) -> dict[str, list[tuple[int, str | None, str | None, str | None]]]:
    """Every try of every task: (try number, state, start, end), past tries from
    ``task_instance_history`` (Airflow 3 keeps one row per finished try there)."""
    out: dict[str, list[tuple[int, str | None, str | None, str | None]]] = {}
    with sqlite3.connect(db) as c:
        for table in ("task_instance_history", "task_instance"):
            for task, n, st, a, b in c.execute(
                    f"SELECT task_id, try_number, state, start_date, end_date FROM {table} "
                    "WHERE dag_id = 'vmigrate_wave_t' ORDER BY try_number"):
                out.setdefault(task, []).append((n, st, a, b))
    return out


def log_line(raw: str) -> str:
    """One Airflow 3 task-log line (JSON) as ``time level event [exception]``."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return raw[:300]
    if not isinstance(rec, dict):
        return raw[:300]
    err = "".join(f" [{e.get('exc_type')}: {str(e.get('exc_value'))[:300]}]"
                  for e in rec.get("error_detail") or [] if isinstance(e, dict))
    return f"{str(rec.get('timestamp', ''))[11:23]} {rec.get('level', '')} " \
        f"{str(rec.get('event', ''))[:400]}{err}"[:700]


def journal_tail(path: Path, n: int = 12) -> list[str]:
    """The last steps, errors and decisions of a workspace's journal."""
    if not path.exists():
        return [f"(no {path})"]
    recs = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    keep = [r for r in recs[-200:] if any(k in r for k in (
        '"error', '"step"', '"cutover', '"go_decision"', '"run_', '"evidence_archived"',
        '"workspace_waited"', '"vm_phase"', '"rollback'))]
    return [r[:400] for r in keep[-n:]]


def explain(db: Path, home: Path, ws: Path, wave_dir: Path, tasks: list[str]) -> str:
    """Why these tasks are not in their expected state: each try, its task log's tail, the
    VM's workspace journal and wave log tails (a few KB; a failing run's files may be gone
    by the time someone reads the report)."""
    every, out = tries(db), []
    for task in tasks:
        vm = task.split(".")[0]
        out.append(f"== {task}: tries {every.get(task)}")
        for log in sorted((home / "logs").glob(f"dag_id=*/run_id=*/task_id={task}/attempt=*.log")):
            lines = log.read_text(errors="replace").splitlines()
            out.append(f"-- {log.name} ({len(lines)} lines), last:")
            out += ["   " + log_line(ln) for ln in lines[-14:]]
        out.append(f"-- {vm} workspace journal, last:")
        out += ["   " + r for r in journal_tail(ws / vm / "journal.jsonl")]
        wave_log = wave_dir / "logs" / f"{vm}.log"
        if wave_log.exists():
            out.append(f"-- wave log {wave_log.name}, last:")
            out += ["   " + ln[:300] for ln in wave_log.read_text(errors="replace").splitlines()[-6:]]
    text = "\n".join(out)
    return text if len(text) < 24000 else text[:4000] + "\n...\n" + text[-20000:]
