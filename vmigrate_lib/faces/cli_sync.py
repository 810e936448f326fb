"""CLI commands ``preflight``, ``sync`` (``--cycles N`` or ``--until-converged``),
``certify`` and ``status``: the copy while the source VM runs.

Thin: load the params, open the migration, call the engine, print a few lines.
Preflight runs before the workspace is created or locked, so bad input changes
nothing (exit 2).
"""

from __future__ import annotations

import argparse
import json

from ..engine.converge import run_until_converged
from ..engine.cycle import run_cycle
from ..engine.preflight import run_preflight
from ..engine.sync import run_cycles, start
from ..engine.workspace import Workspace
from ..errors import ParameterError
from ..session import close_migration
from ..units import fmt_bytes, fmt_rate, fmt_secs
from .cli_plan import budget_of, estimates, planner_flags, print_plan
from .common import (
    Subcommands,
    WithParams,
    duration_arg,
    from_file,
    load_params,
    open_from_args,
    positive_int_arg,
)
from .console import table


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``preflight``, ``sync``, ``certify`` and ``status``."""
    p = with_params(sub.add_parser("preflight", help="check everything, change nothing"))
    p.set_defaults(func=cmd_preflight)

    p = with_params(sub.add_parser("sync", help="seed, then delta cycles"))
    p.add_argument("--cycles", type=positive_int_arg, default=1, help="cycles to run (default 1)")
    p.add_argument("--interval", type=duration_arg, default=None, help=f"pause between cycles ({from_file('sync', 'interval')})")
    p.add_argument("--until-converged", action="store_true",
                   help="cycle on the planner's advice until a cutover fits the budget")
    p.add_argument("--max-cycles", type=int, default=None,
                   help="with --until-converged: stop after this many "
                   f"({from_file('sync', 'max_cycles')})")
    p.add_argument("--target-interval", type=duration_arg, default=None,
                   help="the pause the planner shrinks toward "
                   f"({from_file('sync', 'target_interval')})")
    planner_flags(p, "with --until-converged; ")
    p.set_defaults(func=cmd_sync)

    p = with_params(sub.add_parser("certify", help="prove the copy identical (whole disks)"))
    p.add_argument("--repair", action="store_true", help="copy differing blocks again")
    p.set_defaults(func=cmd_certify)

    p = with_params(sub.add_parser("status", help="the migration's state and cycles"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)


def cmd_preflight(args: argparse.Namespace) -> int:
    m = open_from_args(args)
    try:
        report = run_preflight(m, raise_on_failure=True)
    finally:
        close_migration(m)
    print(f"preflight passed: {len(report.checks)} checks, nothing was changed")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    if args.until_converged:
        return cmd_sync_until_converged(args)
    m = open_from_args(args, refuse_finished_as="sync")
    try:
        report = run_preflight(m)  # before the workspace is created or locked
        with m.workspace:
            outcomes = run_cycles(m, args.cycles, interval=args.interval, report=report)
    finally:
        close_migration(m)
    # Each cycle's line said its figures; the summary says what is left to know.
    print(f"sync: {len(outcomes)} cycle(s) done; workspace {m.workspace.root}")
    return 0


def cmd_sync_until_converged(args: argparse.Namespace) -> int:
    if args.max_cycles is not None and args.max_cycles < 1:
        raise ParameterError("--max-cycles must be at least 1", parameter="max_cycles")
    m = open_from_args(args, refuse_finished_as="sync")
    try:
        budget = budget_of(args, m.params)
        sync = m.params.sync
        shutdown_s, boot_s = estimates(args, m.params)
        report = run_preflight(m)
        with m.workspace:
            res = run_until_converged(
                m, budget=budget, max_cycles=args.max_cycles or sync.max_cycles,
                target_interval=args.target_interval or sync.target_interval,
                throughput_override=args.throughput, shutdown_s=shutdown_s, boot_s=boot_s,
                report=report)
    finally:
        close_migration(m)
    print(f"sync: {len(res.outcomes)} cycle(s); stopped: {res.stopped_because}")
    if res.plan is not None:
        print_plan(res.plan)
    print("the decision is yours: vmigrate cutover when the window opens")
    return 0


def cmd_certify(args: argparse.Namespace) -> int:
    m = open_from_args(args)
    try:
        state = m.workspace.current  # loaded by open_migration; nothing written yet
        if state is None or (not state.seeded and not state.untrusted()):
            raise ParameterError("nothing to certify yet: no copy has been seeded",
                                 hint="run vmigrate sync first")
        report = run_preflight(m)
        with m.workspace:
            start(m, report)
            if not m.workspace.state.seeded and not m.workspace.state.untrusted():
                raise ParameterError("nothing to certify yet", hint="run vmigrate sync first")
            outcome = run_cycle(m, certify="full", repair=args.repair)
    finally:
        close_migration(m)
    for key, res in outcome.certify.items():
        print(f"disk {key}: {res.summary()['result']}  {res.algorithm}  {res.source_digest[:16]}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    p = load_params(args)
    ws = Workspace(p.workspace)
    state = ws.load()
    if not state:
        print(f"no migration in workspace {p.workspace} yet (run vmigrate sync)")
        return 0
    cycles = list(ws.journal.records("cycle"))
    print(f"migration {state.migration_id}: {p.vm} -> {p.target_name} "
          f"({p.source.host} -> {p.destination.host}), {state.cycles} cycle(s)")
    rows = [{
        "cycle": c["number"], "kind": c["kind"], "changed": fmt_bytes(c["bytes_changed"]),
        "sent": fmt_bytes(c["bytes_sent"]), "duration": fmt_secs(c["duration"]),
        "throughput": fmt_rate(c["throughput"]),
        "certify": (c.get("certify") or {}).get("result", ""),
    } for c in cycles]
    if rows:
        print(table(rows, list(rows[0])))
    ip = state.in_progress
    if ip and not ip.committed:
        print(f"interrupted cycle {ip.number}: a re-run resumes it (checkpoints {ip.checkpoints})")
    if args.json:
        print(json.dumps(state.to_json(), indent=2))
    return 0
