"""CLI command ``plan``, and the planner flags ``sync --until-converged`` and ``cutover``
share: the downtime budget, throughput override and the shutdown/boot estimates.

A flag left out keeps the params file's value (its help names the field and the
schema's default).
"""

from __future__ import annotations

import argparse
import json

from ..engine.converge import journal_plan
from ..engine.planner import Plan
from ..engine.workspace import Workspace
from ..errors import ParameterError
from ..params import MigrationParams
from ..units import fmt_bytes, fmt_rate, fmt_secs
from .common import Subcommands, WithParams, duration_arg, from_file, load_params, rate_arg


def planner_flags(p: argparse.ArgumentParser, when: str = "") -> None:
    """``--downtime-budget``, ``--throughput``, ``--shutdown-time``, ``--boot-time``."""
    p.add_argument("--downtime-budget", "--budget", dest="budget", type=duration_arg,
                   default=None, help=f"downtime budget, e.g. 120s ({when}default: "
                   f"{from_file('', 'downtime_budget')})")
    p.add_argument("--throughput", type=rate_arg, default=None,
                   help="override the measured throughput, e.g. 80MB/s")
    p.add_argument("--shutdown-time", type=duration_arg, default=None,
                   help="guest shutdown time until a cutover measured it "
                        f"({from_file('cutover', 'expected_shutdown')})")
    p.add_argument("--boot-time", type=duration_arg, default=None,
                   help="boot-to-ready time until a cutover measured it "
                        f"({from_file('cutover', 'expected_boot')})")


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``plan``."""
    p = with_params(sub.add_parser("plan", help="predicted downtime of a cutover now"))
    planner_flags(p)
    p.add_argument("--target-interval", type=duration_arg, default=None,
                   help=f"the pause the planner shrinks toward ({from_file('sync', 'target_interval')})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)


def estimates(args: argparse.Namespace, params: MigrationParams) -> tuple[float, float]:
    """Shutdown and boot estimates: the flags, else the file's cutover section."""
    shutdown = params.cutover.expected_shutdown if args.shutdown_time is None else args.shutdown_time
    boot = params.cutover.expected_boot if args.boot_time is None else args.boot_time
    return shutdown, boot


def budget_of(args: argparse.Namespace, params: MigrationParams) -> float:
    """``--downtime-budget``, else the file's ``downtime_budget``; positive."""
    budget = args.budget if args.budget is not None else float(params.downtime_budget)
    if budget <= 0:
        raise ParameterError("--downtime-budget must be positive", parameter="downtime_budget")
    return float(budget)


def print_plan(p: Plan) -> None:
    """The plan as three lines: verdict, the numbers behind it, the advice."""
    print(p.summary())
    print(f"  final delta ~{fmt_bytes(p.final_bytes)} over {fmt_secs(p.window)} of writes; "
          f"throughput {fmt_rate(p.throughput)} ({p.throughput_source}); shutdown "
          f"{p.shutdown_source}, boot {p.boot_source}; next interval {fmt_secs(p.next_interval)}")
    print(f"  advice: {p.advice}")


def cmd_plan(args: argparse.Namespace) -> int:
    params = load_params(args)
    ws = Workspace(params.workspace)
    if not ws.load():
        raise ParameterError(f"no migration in workspace {params.workspace} yet",
                             hint="run vmigrate sync first")
    shutdown_s, boot_s = estimates(args, params)
    p = journal_plan(ws.journal, budget=budget_of(args, params), shutdown_s=shutdown_s,
                     boot_s=boot_s, throughput_override=args.throughput,
                     target_interval=args.target_interval or params.sync.target_interval,
                     certify=params.cutover.certify)
    if args.json:
        print(json.dumps(p.to_dict(), indent=2))
    else:
        print_plan(p)
    return 0
