"""The ``vmigrate`` command: assembles the parser, runs one command, errors as one line.

Each command module registers its own commands (``register(subparsers, with_params)``)
and shares only :mod:`vmigrate_lib.faces.common`; this module knows none of them.

Exit codes: 0 done, 1 a fault during work (a re-run resumes), 2 bad input
(nothing was changed), 130 interrupted.  stderr carries at most one
``vmigrate: error:`` line, after any ``vmigrate: warning:`` lines (library
warnings, :func:`vmigrate_lib.faces.console.warnings_as_lines`).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from ..errors import VmigrateError
from ..fsfaults import disk_full
from . import cli_claim, cli_cutover, cli_keep, cli_lab, cli_plan, cli_runbook, cli_sync, cli_wave
from .common import with_params
from .console import warnings_as_lines

#: The command modules, in the order ``vmigrate --help`` lists their commands.
COMMAND_MODULES = (cli_sync, cli_runbook, cli_plan, cli_cutover, cli_claim, cli_lab, cli_wave,
                   cli_keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmigrate",
        description="Move a running VM to another host by iterative differential sync.",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub, with_params)
    return parser


@functools.cache
def freeze_at_exit() -> None:
    """At exit, once every later-registered handler ran (atexit is last in, first out),
    move every object to the collector's permanent generation (``gc.freeze``): the
    interpreter's final collections then skip what the command made, all of which dies
    with the process anyway.  Everything durable is written before (journal and state
    fsynced, data plane closed).  A sync's exit after its last step: 0.37-0.48 s ->
    0.09-0.11 s at load 16-18 (bench/seed_timeline.py).  Registered once per process."""
    atexit.register(gc.freeze)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean-up path as Ctrl-C: snapshot removed, state kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    warnings_as_lines()
    freeze_at_exit()
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
