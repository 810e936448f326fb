"""CLI commands ``plan``, ``cutover``, ``rollback`` and ``sync --until-converged``.

Thin: the params file's ``cutover`` section with the flags given on top becomes
:class:`CutoverOptions` (one place: ``CutoverOptions.from_params``); a flag left
out keeps the file's value.  ``sync --until-converged`` takes ``--max-cycles`` and
``--target-interval`` from ``sync.max_cycles`` / ``sync.target_interval`` unless
given.  Results become a few lines.  Exit codes as everywhere: 2 = refused before any change (bad
input, no-go, rollback not confirmed), 1 = fault (state recorded, re-run resumes).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ..errors import ParameterError
from ..params import MigrationParams
from ..units import fmt_bytes, fmt_rate, fmt_secs, parse_duration, parse_size

WithParams = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def _dur(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _rate(text: str) -> float:
    """``50MB`` or ``50MB/s`` -> bytes per second."""
    try:
        return float(parse_size(text.removesuffix("/s")))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from exc
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("a port is between 1 and 65535")
    return value


def _planner_flags(p: argparse.ArgumentParser, budget_default_help: str) -> None:
    p.add_argument("--downtime-budget", "--budget", dest="budget", type=_dur, default=None,
                   help=f"downtime budget, e.g. 120s ({budget_default_help})")
    p.add_argument("--throughput", type=_rate, default=None,
                   help="override the measured throughput, e.g. 80MB/s")
    p.add_argument("--shutdown-time", type=_dur, default=None,
                   help="guest shutdown time until a cutover measured it "
                        "(cutover.expected_shutdown, 30s)")
    p.add_argument("--boot-time", type=_dur, default=None,
                   help="boot-to-ready time until a cutover measured it "
                        "(cutover.expected_boot, 60s)")


def register(sub: Any, with_params: WithParams) -> None:
    """Add our subcommands, and the convergence flags to ``sync``."""
    p = with_params(sub.add_parser("plan", help="predicted downtime of a cutover now"))
    _planner_flags(p, "default: the params' downtime_budget")
    p.add_argument("--target-interval", type=_dur, default=None,
                   help="default: sync.target_interval")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = with_params(sub.add_parser("cutover", help="switch to the copy: stop, final sync, start"))
    _planner_flags(p, "default: the params' downtime_budget")
    # Defaults come from the params file's cutover section (then CutoverOptions'):
    # every flag here is None unless given, and then overrides the file.
    p.add_argument("--force", action="store_true",
                   help="go even if go/no-go says no (recorded; never read from a file)")
    p.add_argument("--max-sync-age", type=_dur, default=None,
                   help="the last sync may be at most this old (cutover.max_sync_age, 10m)")
    p.add_argument("--shutdown-timeout", type=_dur, default=None,
                   help="graceful shutdown limit (cutover.shutdown_timeout, 5m)")
    p.add_argument("--allow-hard-poweroff", action=argparse.BooleanOptionalAction, default=None,
                   help="power off hard if the guest does not shut down in time "
                   "(cutover.allow_hard_poweroff, no)")
    p.add_argument("--certify", choices=("none", "changed", "full"), default=None,
                   help="certify the final delta (changed), whole disks (full) or not "
                   "(cutover.certify, changed)")
    p.add_argument("--network-map", action="append", default=None, metavar="SRC=DST",
                   help="map a source network to a destination network (added to "
                   "cutover.network_map)")
    p.add_argument("--probe-port", action="append", type=_port, default=None, metavar="PORT",
                   help="TCP port on the new VM that must accept a connection (replaces "
                   "cutover.probes)")
    p.add_argument("--probe-command", default=None, help="command that must exit 0 "
                   "($VMIGRATE_VM and $VMIGRATE_VM_IP are set; cutover.probe_command)")
    p.add_argument("--probe-host", default=None,
                   help="address to probe (cutover.probe_host; default: the VM's IP)")
    p.add_argument("--probe-timeout", type=_dur, default=None, help="cutover.probe_timeout, 60s")
    p.add_argument("--ready-timeout", type=_dur, default=None, help="cutover.ready_timeout, 10m")
    p.set_defaults(func=cmd_cutover)

    p = with_params(sub.add_parser("rollback", help="back to the source VM"))
    p.add_argument("--yes-lose-bob-writes", action="store_true",
                   help="agree that writes made on the new VM since it started are lost")
    p.set_defaults(func=cmd_rollback)

    sync = sub.choices.get("sync")
    if sync is not None:
        sync.add_argument("--until-converged", action="store_true",
                          help="cycle on the planner's advice until a cutover fits the budget")
        sync.add_argument("--max-cycles", type=int, default=None,
                          help="with --until-converged: stop after this many "
                          "(default: sync.max_cycles, 10)")
        sync.add_argument("--target-interval", type=_dur, default=None,
                          help="the pause the planner shrinks toward "
                          "(default: sync.target_interval, 5s)")
        _planner_flags(sync, "with --until-converged; default: the params' downtime_budget")


def _estimates(args: argparse.Namespace, params: MigrationParams) -> tuple[float, float]:
    """Shutdown and boot estimates: the flags, else the file's cutover section."""
    shutdown = params.cutover.expected_shutdown if args.shutdown_time is None else args.shutdown_time
    boot = params.cutover.expected_boot if args.boot_time is None else args.boot_time
    return shutdown, boot


def _budget(args: argparse.Namespace, params: Any) -> float:
    budget = args.budget if args.budget is not None else float(params.downtime_budget)
    if budget <= 0:
        raise ParameterError("--downtime-budget must be positive", parameter="downtime_budget")
    return float(budget)


def _print_plan(p: Any) -> None:
    print(p.summary())
    print(f"  final delta ~{fmt_bytes(p.final_bytes)} over {fmt_secs(p.window)} of writes; "
          f"throughput {fmt_rate(p.throughput)} ({p.throughput_source}); shutdown "
          f"{p.shutdown_source}, boot {p.boot_source}; next interval {fmt_secs(p.next_interval)}")
    print(f"  advice: {p.advice}")


def cmd_plan(args: argparse.Namespace) -> int:
    from ..engine.converge import journal_plan
    from ..engine.workspace import Workspace
    from .cli import _load

    params = _load(args)
    ws = Workspace(params.workspace)
    if not ws.load():
        raise ParameterError(f"no migration in workspace {params.workspace} yet",
                             hint="run vmigrate sync first")
    shutdown_s, boot_s = _estimates(args, params)
    p = journal_plan(ws.journal, budget=_budget(args, params), shutdown_s=shutdown_s,
                     boot_s=boot_s, throughput_override=args.throughput,
                     target_interval=args.target_interval or params.sync.target_interval,
                     certify=params.cutover.certify)
    if args.json:
        print(json.dumps(p.to_dict(), indent=2))
    else:
        _print_plan(p)
    return 0


def cmd_sync_until_converged(args: argparse.Namespace) -> int:
    from ..engine.converge import run_until_converged
    from ..engine.preflight import run_preflight
    from ..session import close_migration
    from .cli import _open

    if args.max_cycles is not None and args.max_cycles < 1:
        raise ParameterError("--max-cycles must be at least 1", parameter="max_cycles")
    m = _open(args)
    try:
        budget = _budget(args, m.params)
        sync = m.params.sync
        report = run_preflight(m)
        with m.workspace:
            res = run_until_converged(
                m, budget=budget, max_cycles=args.max_cycles or sync.max_cycles,
                target_interval=args.target_interval or sync.target_interval,
                throughput_override=args.throughput, shutdown_s=_estimates(args, m.params)[0],
                boot_s=_estimates(args, m.params)[1], report=report)
    finally:
        close_migration(m)
    print(f"sync: {len(res.outcomes)} cycle(s); stopped: {res.stopped_because}")
    if res.plan is not None:
        _print_plan(res.plan)
    print("the decision is yours: vmigrate cutover when the window opens")
    return 0


def cutover_options(args: argparse.Namespace, params: Any) -> Any:
    """The file's ``cutover`` section with the flags that were given on top."""
    from ..engine.cutover import CutoverOptions

    nets: dict[str, str] | None = None
    for item in args.network_map or ():
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise ParameterError(f"--network-map {item!r}: write SRC=DST", parameter="network_map")
        nets = {**(nets or {}), src: dst}
    return CutoverOptions.from_params(
        params.cutover, budget=_budget(args, params), force=args.force or None,
        max_sync_age=args.max_sync_age, shutdown_timeout=args.shutdown_timeout,
        allow_hard_poweroff=args.allow_hard_poweroff, certify=args.certify, network_map=nets,
        probes=args.probe_port, probe_command=args.probe_command, probe_host=args.probe_host,
        probe_timeout=args.probe_timeout, ready_timeout=args.ready_timeout,
        shutdown_s=args.shutdown_time, boot_s=args.boot_time,
        throughput_override=args.throughput)


def cmd_cutover(args: argparse.Namespace) -> int:
    from ..engine.cutover import run_cutover
    from ..session import close_migration
    from .cli import _open

    m = _open(args)
    try:
        opts = cutover_options(args, m.params)
        with m.workspace:
            res = run_cutover(m, opts)
    finally:
        close_migration(m)
    print(f"cutover attempt {res.attempt}: {res.status}; downtime "
          f"{fmt_secs(res.downtime or 0.0)} (predicted {fmt_secs(res.predicted or 0.0)})")
    for w in res.warnings:
        print(f"  warning: {w}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..engine.cutover import run_rollback
    from ..session import close_migration
    from .cli import _open

    m = _open(args)
    try:
        with m.workspace:
            res = run_rollback(m, confirm_data_loss=args.yes_lose_bob_writes)
    finally:
        close_migration(m)
    print(f"rollback of attempt {res.attempt}: {res.status}; {m.params.vm} is running")
    for w in res.warnings:
        print(f"  warning: {w}")
    return 0
