"""CLI commands ``wave plan|run|airflow FILE``: many VMs as one planned change.

``plan`` changes nothing: each VM's preflight, the estimates, the schedule as a table,
``plan.json`` and a Gantt chart per host pair in ``<workspaces>/wave-<name>/plan/``.
``run`` is the embedded runner (:mod:`vmigrate_lib.wave.runner`); a re-run resumes.
A wave file's problems are each one ``vmigrate: error:`` line (exit 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from ..errors import ParameterError, WaveFileError
from .common import Subcommands, WithParams


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``wave plan`` and ``wave run`` (they take a wave file, not a params file)."""
    w = sub.add_parser("wave", help="many VMs as one planned change (a wave file)")
    wsub = w.add_subparsers(dest="wave_cmd", required=True)
    p = wsub.add_parser("plan", help="preflight every VM, estimate, print and plot the "
                        "schedule (changes nothing)")
    p.add_argument("wave_file")
    p.add_argument("--no-preflight", action="store_true",
                   help="plan on paper: sizes and dirty rates from the wave file")
    p.add_argument("--start", default=None,
                   help="when the wave starts, ISO time with zone (default: now)")
    p.add_argument("--out", default=None,
                   help="folder for plan.json and the Gantt PNGs (default: <wave folder>/plan)")
    p.set_defaults(func=cmd_plan)
    r = wsub.add_parser("run", help="run the wave here: each VM's runbooks within the limits")
    r.add_argument("wave_file")
    r.add_argument("--no-report", action="store_true", help="skip the wave report notebook")
    r.set_defaults(func=cmd_run)
    a = wsub.add_parser("airflow", help="write the wave as an Apache Airflow DAG file and "
                        "its pools (airflow pools import FILE)")
    a.add_argument("wave_file")
    a.add_argument("--out", default=None,
                   help="folder for the DAG file and pools file (default: <wave folder>/airflow)")
    a.add_argument("--start", default=None,
                   help="when the wave starts (windows are offsets from it), ISO time with "
                   "zone (default: now)")
    a.set_defaults(func=cmd_airflow)


def _spec(path: str) -> object:
    from ..wave.spec import load_wave

    try:
        return load_wave(Path(path))
    except WaveFileError as exc:
        problems = exc.fields.get("problems", [])
        if len(problems) < 2:
            raise
        for line in problems:
            print(f"vmigrate: error: {path}: {line}", file=sys.stderr)
        raise WaveFileError(f"{path}: the {len(problems)} problems above") from exc


def _start(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ParameterError("--start: write an ISO time with its zone, e.g. "
                             "2026-12-01T22:00:00Z", parameter="start") from exc
    if when.tzinfo is None:
        raise ParameterError("--start needs a zone (Z or +01:00)", parameter="start")
    return when.timestamp()


def cmd_plan(args: argparse.Namespace) -> int:
    from ..wave.gantt import save_gantt, table_lines
    from ..wave.planning import make_plan, save_plan
    from ..wave.spec import WaveSpec

    spec = _spec(args.wave_file)
    assert isinstance(spec, WaveSpec)
    t0 = time.perf_counter()
    res = make_plan(spec, start_at=_start(args.start), preflight=not args.no_preflight)
    took = time.perf_counter() - t0
    for line in table_lines(res.schedule):
        print(line)
    for note in res.plan.notes:
        print(f"note: {note}")
    for vm, why in sorted(res.refused.items()):
        print(f"preflight {vm}: {why}")
    out = Path(args.out) if args.out else spec.wave_dir / "plan"
    save_plan(res, out)
    pngs = save_gantt(res.schedule, out)
    print(f"planned {len(spec.tasks)} VMs in {took:.2f} s; plan.json and {len(pngs)} Gantt "
          f"chart(s) in {out}")
    return 2 if res.refused else 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..wave.report import run_report
    from ..wave.runner import WaveRunner
    from ..wave.spec import WaveSpec

    spec = _spec(args.wave_file)
    assert isinstance(spec, WaveSpec)
    runner = WaveRunner(spec, say=lambda s: None if args.quiet else print(s, flush=True))
    state = runner.run()
    counts: dict[str, int] = {}
    for v in state.vms.values():
        counts[v.status] = counts.get(v.status, 0) + 1
    print(f"wave {spec.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if not args.no_report:
        folder = run_report(spec)
        print(f"wave report: {folder}")
    return 0 if counts.get("done", 0) == len(state.vms) else 1


def cmd_airflow(args: argparse.Namespace) -> int:
    from ..wave.airflow_dag import write_dag
    from ..wave.spec import WaveSpec

    spec = _spec(args.wave_file)
    assert isinstance(spec, WaveSpec)
    out = Path(args.out) if args.out else spec.wave_dir / "airflow"
    jupyter = Path(sys.prefix) / "share" / "jupyter"  # this venv's vmigrate kernelspec
    dag = write_dag(spec, out.resolve(), _start(args.start), str(jupyter))
    print(f"DAG {dag.dag_id}: {dag.dag_file}")
    print(f"pools ({', '.join(f'{k} {n}' for k, n in dag.pools.items())}): {dag.pools_file}")
    print(f"next: airflow pools import {dag.pools_file}; copy the DAG file into the dags "
          f"folder; airflow dags test {dag.dag_id}")
    return 0
