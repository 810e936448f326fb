"""What a wave's Airflow tasks ask of vmigrate: ``python -m vmigrate_lib.wave.airflow_task``.

The DAG (:mod:`.airflow_dag`) imports nothing of vmigrate; its tasks call this module
with the project's Python, so a run on Airflow leaves what ``vmigrate wave run`` leaves:
the wave's ``state.json`` and journal (every VM's phases, so the same peaks and report),
each runbook's sealed archive in the VM's workspace (as ``vmigrate run``: journal slice,
audit, HTML, manifest, signature, read-only), its bandwidth cap, its warm cycles, a
rollback after failed probes, "window missed" when its window ended first, and the wave
report.  Each command prints one JSON line for the task.

    begin VM KIND         a runbook may start? (its window for a cutover); params with cap
    seal VM KIND NB ...   archive and seal the executed notebook; the VM's new status
    warm VM               one warm delta cycle (``vmigrate sync --until-converged``)
    report                the wave report notebook, sealed
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..engine.cutover_record import CutoverRecord
from ..engine.workspace import Journal, Workspace
from ..faces.executed import read_result
from ..faces.papermill_runner import absolute_paths, injected, runbooks_dir
from ..faces.run_archive import (
    archive_outputs,
    finish_document,
    journal_archived,
    prepare_folder,
    seal,
)
from ..faces.runbook_params import check_parameters
from .bandwidth import with_cap, write_params
from .procs import vmigrate, wait_workspace_free
from .resume import rolled_back_since, rolled_back_why
from .spec import WaveSpec, load_wave
from .state import IN_FLIGHT, OVER, VmRun, WaveState, load, save

WINDOW_MISSED = ("window missed: its group's window ended before its cutover could start "
                 "(synced, nothing powered off; run it in the next wave)")


class AirflowBook:
    """The wave's state and journal, shared by the tasks of one Airflow run (a file lock
    serialises them: tasks run in separate processes)."""

    def __init__(self, spec: WaveSpec, start_at: float) -> None:
        self.spec, self.start_at, self.dir = spec, start_at, spec.wave_dir
        for sub in ("", "params", "logs"):
            (self.dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.journal = Journal(self.dir / "journal.jsonl")

    @contextlib.contextmanager
    def state(self) -> Iterator[WaveState]:
        with open(self.dir / ".state.lock", "a+") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            st = load(self.dir / "state.json")
            if st is None:
                st = WaveState(self.spec.name, self.start_at, "airflow", {})
                self.journal.append("wave_started", wave=self.spec.name, runner="airflow",
                                    file=str(self.spec.path), vms=len(self.spec.tasks))
            for t in self.spec.tasks:
                st.vms.setdefault(t.name, VmRun())
            yield st
            save(self.dir / "state.json", st)

    def set(self, vm: str, status: str, **fields: Any) -> VmRun:
        task = next(t for t in self.spec.tasks if t.name == vm)
        with self.state() as st:
            run = st.vms[vm]
            if status != run.status:
                run.status = status  # type: ignore[assignment]
                self.journal.append("vm_phase", vm=vm, status=status, source=task.source,
                                    destination=task.destination, group=task.group,
                                    error=fields.get("error") or None, runner="airflow")
            for k, v in fields.items():
                setattr(run, k, v)
            if status in OVER:
                run.ended = time.time()
            return run

    def params_file(self, vm: str) -> Path:
        return self.dir / "params" / f"{vm}.yaml"

    def capped(self, vm: str, step: str) -> dict[str, Any]:
        """The VM's params, with its share of its pair's bandwidth if the wave names one;
        written to its params file (for warm cycles and a rollback)."""
        raw = dict(self.spec.vm_params[vm])
        if self.spec.limits.enforce_bandwidth:
            task = next(t for t in self.spec.tasks if t.name == vm)
            with self.state() as st:
                copies = sum(t.pair == task.pair and st.vms[t.name].status in IN_FLIGHT
                             for t in self.spec.tasks)
            cap = self.spec.limits.cap(task.pair, max(1, copies))
            raw = with_cap(raw, cap)
            self.journal.append("vm_bandwidth_cap", vm=vm, pair=str(task.pair), step=step,
                                share=self.spec.limits.bandwidth_of(task.pair),
                                copies=copies, bwlimit=cap, runner="airflow")
        write_params(self.params_file(vm), raw)
        return raw

    def window_closed(self, vm: str) -> bool:
        task = next(t for t in self.spec.tasks if t.name == vm)
        w = self.spec.plan(self.start_at).group(task.group).window
        return time.time() - self.start_at >= w.end


def cutover_record(spec: WaveSpec, vm: str) -> CutoverRecord | None:
    state = Workspace(Path(spec.vm_params[vm]["workspace"])).load()
    return state.cutover if state is not None else None


def cutover_status(spec: WaveSpec, vm: str) -> str | None:
    co = cutover_record(spec, vm)
    return co.status if co else None


def already_done(book: AirflowBook, vm: str, co: CutoverRecord) -> dict[str, Any]:
    """A cutover task tried again after its VM's cutover was done (an earlier try's state
    update or seal was lost, or its process was killed after the cutover cell): the VM is
    done, and the runbook, which refuses a finished workspace, must not run again."""
    downtime = (co.measured or {}).get("downtime_s")
    with book.state() as st:
        sealed = [f for f in st.vms[vm].evidence if "-cutover-" in Path(f).name]
    book.set(vm, "done", downtime_s=downtime,
             predicted_s=(co.prediction or {}).get("predicted_downtime"))
    why = (f"{vm} was already cut over (attempt {co.attempt}, ended {co.ended}) by an "
           f"earlier try of this task; nothing to run")
    book.journal.append("vm_cutover_already_done", vm=vm, attempt=co.attempt,
                        ended=co.ended, evidence=sealed, runner="airflow")
    return {"go": False, "done": True, "why": why, "evidence": sealed}


def begin(book: AirflowBook, vm: str, kind: str) -> dict[str, Any]:
    """May this runbook start now, and with which parameters (as papermill injects them)."""
    spec = book.spec
    co = cutover_record(spec, vm) if kind == "cutover" else None
    if kind == "cutover" and co is None and book.window_closed(vm):
        book.set(vm, "window_missed", error=WINDOW_MISSED)
        return {"go": False, "why": WINDOW_MISSED}
    held_by = wait_workspace_free(Path(spec.vm_params[vm]["workspace"]))  # a killed run's kernel
    if held_by:
        book.journal.append("workspace_waited", vm=vm, before=f"run {kind}", held_by=held_by)
    co = cutover_record(spec, vm) if kind == "cutover" else None  # that kernel may have ended it
    if co is not None and co.status == "done":
        return already_done(book, vm, co)
    with book.state() as st:
        first, now = st.vms[vm].started, st.vms[vm].status
    if co is not None and now == "cutover" and rolled_back_since(book.journal, vm, co):
        why = rolled_back_why(vm, co)
        book.set(vm, "rolled_back", error=why)
        book.journal.append("vm_cutover_already_over", vm=vm, attempt=co.attempt,
                            status=co.status, runner="airflow")
        return {"go": False, "rolled_back": True, "why": why}
    book.set(vm, "syncing" if kind == "sync" else "cutover",
             **({"started": first or time.time()} if kind == "sync" else {}))
    raw = book.capped(vm, f"run {kind}")
    checked = check_parameters(kind, injected(kind, raw), base_dir=spec.path.parent)
    ws = Workspace(checked.migration.workspace)
    offset = ws.journal.path.stat().st_size if ws.journal.path.exists() else 0
    return {"go": True, "params": injected(kind, absolute_paths(raw, checked)),
            "offset": offset, "started": time.time()}


def seal_run(book: AirflowBook, vm: str, kind: str, nb: Path, args: argparse.Namespace
             ) -> dict[str, Any]:
    """Archive the executed notebook as ``vmigrate run`` does, and the VM's new status."""
    spec = book.spec
    raw = dict(spec.vm_params[vm])
    ws = Workspace(Path(raw["workspace"]))
    folder = prepare_folder(kind, raw, book.params_file(vm), None, ws)
    if nb.exists():
        shutil.copyfile(nb, folder / f"{kind}.ipynb")
    else:  # papermill failed before writing it: the runbook as it was
        shutil.copyfile(runbooks_dir() / f"{kind}.ipynb", folder / f"{kind}.ipynb")
    source = runbooks_dir() / f"{kind}.ipynb"
    notes = archive_outputs(folder, kind, raw, source, args.kernel, ws, args.offset)
    ended = time.time()
    result = read_result(folder / f"{kind}.ipynb")
    error = {"error": "AirflowTaskFailed", "message": args.error} if args.status != "ok" else None
    record: dict[str, Any] = {
        "runbook": kind, "mode": f"Airflow task {args.task} (run {args.run_id})",
        "status": args.status, "started": args.started, "ended": ended,
        "duration_s": round(ended - args.started, 3), "error": error, "result": result,
        "change_id": raw.get("change_id"), "operator": raw.get("operator"),
        "kernel": args.kernel, "params_file": str(book.params_file(vm)),
        "journal_offset": args.offset, **notes}
    html_error = finish_document(folder, kind, record)
    if html_error:
        record["html_export_error"] = html_error
    _, manifest, _ = seal(folder, record, raw)
    journal_archived(ws, kind, args.status, folder, manifest)
    with book.state() as st:
        st.vms[vm].evidence.append(str(folder))
    status = outcome(book, vm, kind, args.status == "ok", result or {}, args.error, args.final)
    return {"folder": str(folder), "status": status}


def outcome(book: AirflowBook, vm: str, kind: str, ok: bool, result: dict[str, Any],
            error: str, final: bool) -> str:
    """The VM's status after a runbook, as the local runner decides it (a failing
    cutover's rollback included)."""
    if kind == "sync":
        status = "warm" if ok else ("failed" if final else "syncing")
        book.set(vm, status, **({"ready": time.time()} if ok else {"error": error}))
        return status
    if ok:
        book.set(vm, "done", downtime_s=result.get("downtime_s"),
                 predicted_s=result.get("predicted_downtime_s"))
        return "done"
    co, why = cutover_status(book.spec, vm), f"cutover: {error}"
    if co == "done":  # the runbook failed after the cutover (a later cell): the VM is done
        book.set(vm, "done", error=f"{why} (after the cutover was done)")
        return "done"
    if co == "rolled_back":
        status = "rolled_back"
    elif co in ("probes_failed", "stopped") and book.spec.run.rollback_after_probes:
        rb = vmigrate(["rollback", "--yes-lose-bob-writes"], book.params_file(vm),
                      book.dir / "logs" / f"{vm}.log")
        status, why = (("rolled_back", why) if rb.ok else
                       ("needs_operator", f"{why}; rollback: {rb.last_line}"))
    elif co in ("probes_failed", "stopped", "running", "rolling_back"):
        status = "needs_operator"
    else:
        status = "failed"
    book.set(vm, status, error=why)
    return status


def warm(book: AirflowBook, vm: str) -> dict[str, Any]:
    book.set(vm, "warm")
    book.capped(vm, "sync --until-converged")
    res = vmigrate(["sync", "--until-converged"], book.params_file(vm),
                   book.dir / "logs" / f"{vm}.log")
    with book.state() as st:
        st.vms[vm].warm_cycles += 1
    return {"ok": res.ok, "said": res.last_line}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vmigrate_lib.wave.airflow_task")
    ap.add_argument("wave_file")
    ap.add_argument("--start-at", type=float, required=True)
    ap.add_argument("command", choices=("begin", "seal", "warm", "report"))
    ap.add_argument("vm", nargs="?", default="")
    ap.add_argument("kind", nargs="?", default="")
    ap.add_argument("notebook", nargs="?", default="")
    for opt, typ in (("--offset", int), ("--started", float)):
        ap.add_argument(opt, type=typ, default=0)
    for opt in ("--status", "--error", "--kernel", "--task", "--run-id"):
        ap.add_argument(opt, default="")
    ap.add_argument("--final", action="store_true")
    args = ap.parse_args(argv)
    book = AirflowBook(load_wave(args.wave_file), args.start_at)
    out: dict[str, Any]
    if args.command == "begin":
        out = begin(book, args.vm, args.kind)
    elif args.command == "seal":
        out = seal_run(book, args.vm, args.kind, Path(args.notebook), args)
    elif args.command == "warm":
        out = warm(book, args.vm)
    else:
        from .report import run_report
        out = {"folder": str(run_report(book.spec))}
    print(json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
