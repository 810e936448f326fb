"""The ``vmigrate`` command: thin over the library, errors as one clear line.

Exit codes: 0 done, 1 a fault during work (a re-run resumes), 2 bad input
(nothing was changed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from .. import params as params_mod
from ..errors import ParameterError, VmigrateError
from ..fsfaults import disk_full
from ..units import fmt_bytes, fmt_rate, fmt_secs
from .console import make_reporter, table

#: Modules that add commands: each has ``register(subparsers, with_params)``.
_EXTENSIONS: tuple[str, ...] = ("cli_runbook", "cli_cutover", "cli_claim")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise ParameterError("--set needs NAME=VALUE", hint="e.g. --set sync.certify=full",
                                 parameter="set")
        key, value = item.split("=", 1)
        out[key.strip()] = _yaml_scalar(value)
    for flag, key in (("workspace", "workspace"), ("vm", "vm")):
        value = getattr(args, flag, None)
        if value:
            out[key] = value
    return out


def _yaml_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _load(args: argparse.Namespace) -> params_mod.MigrationParams:
    return params_mod.load(args.params, _overrides(args))


def _open(args: argparse.Namespace) -> Any:
    from ..session import open_migration

    return open_migration(_load(args), make_reporter(args.quiet))


# --- commands ------------------------------------------------------------------------


def cmd_preflight(args: argparse.Namespace) -> int:
    from ..engine.preflight import run_preflight
    from ..session import close_migration

    m = _open(args)
    try:
        report = run_preflight(m, raise_on_failure=True)
    finally:
        close_migration(m)
    print(f"preflight passed: {len(report.checks)} checks, nothing was changed")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    if getattr(args, "until_converged", False):  # flags added by cli_cutover
        from .cli_cutover import cmd_sync_until_converged

        return cmd_sync_until_converged(args)
    from ..engine.preflight import run_preflight
    from ..engine.sync import run_cycles
    from ..session import close_migration

    m = _open(args)
    try:
        report = run_preflight(m)  # before the workspace is created or locked
        with m.workspace:
            outcomes = run_cycles(m, args.cycles, interval=args.interval, report=report)
    finally:
        close_migration(m)
    last = outcomes[-1].record if outcomes else {}
    print(f"sync: {len(outcomes)} cycle(s) done; last changed {fmt_bytes(last.get('bytes_changed', 0))}"
          f" in {fmt_secs(last.get('duration', 0.0))}; workspace {m.workspace.root}")
    return 0


def cmd_certify(args: argparse.Namespace) -> int:
    from ..engine.cycle import run_cycle
    from ..engine.preflight import run_preflight
    from ..engine.sync import start
    from ..session import close_migration

    m = _open(args)
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
    from ..engine.workspace import Workspace

    p = _load(args)
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


def cmd_lab(args: argparse.Namespace) -> int:
    from ..lab import lifecycle

    root = Path(args.root)
    if args.lab_cmd == "up":
        print(f"lab up at {root}")
        _print_lab(lifecycle.lab_up(root))
    elif args.lab_cmd == "status":
        _print_lab(lifecycle.lab_status(root))
    elif args.lab_cmd == "down":
        lifecycle.lab_down(root, remove=args.remove)
        print(f"lab down at {root}" + (" (files removed)" if args.remove else ""))
    return 0


def _print_lab(status: Any) -> None:
    print(status)


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmigrate",
        description="Move a running VM to another host by iterative differential sync.",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_params(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--params", "-p", required=True, help="YAML params file")
        p.add_argument("--set", action="append", metavar="NAME=VALUE",
                       help="override a parameter, e.g. --set sync.certify=full")
        p.add_argument("--workspace", help="override the workspace folder")
        p.add_argument("--vm", help="override the source VM name")
        return p

    p = with_params(sub.add_parser("preflight", help="check everything, change nothing"))
    p.set_defaults(func=cmd_preflight)
    p = with_params(sub.add_parser("sync", help="seed, then delta cycles"))
    p.add_argument("--cycles", type=_positive_int, default=1, help="cycles to run (default 1)")
    p.add_argument("--interval", type=_duration, default=None, help="pause between cycles")
    p.set_defaults(func=cmd_sync)
    p = with_params(sub.add_parser("certify", help="prove the copy identical (whole disks)"))
    p.add_argument("--repair", action="store_true", help="copy differing blocks again")
    p.set_defaults(func=cmd_certify)
    p = with_params(sub.add_parser("status", help="the migration's state and cycles"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    for name in _EXTENSIONS:
        module = importlib.import_module(f"{__package__}.{name}")
        module.register(sub, with_params)

    lab = sub.add_parser("lab", help="the embedded lab hypervisor")
    lab.add_argument("lab_cmd", choices=["up", "status", "down"])
    lab.add_argument("--root", default=".vmigrate-lab", help="lab folder")
    lab.add_argument("--remove", action="store_true", help="with down: delete the lab files")
    lab.set_defaults(func=cmd_lab)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _duration(text: str) -> float:
    from ..units import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean-up path as Ctrl-C: snapshot removed, state kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except VmigrateError as exc:
        print(f"vmigrate: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk anywhere: one line, the state stays resumable
        full = disk_full(exc)
        if full is None:
            raise
        print(f"vmigrate: error: {full.one_line()}", file=sys.stderr)
        return full.exit_code
    except KeyboardInterrupt:
        print("vmigrate: interrupted; state is saved, a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
