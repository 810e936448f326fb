"""Test-only entry point: the vmigrate CLI whose cutover dies at one step, as a kill -9 would.

Usage: ``python cutover_killer.py <before|after>:<step> <vmigrate arguments...>``.  It hands
:func:`~vmigrate_lib.engine.cutover.run_cutover` a :class:`CutoverHooks` that calls
``os._exit(137)`` there, then runs the CLI's ``main``.  Production code has no such
switch: only this file, started by the tests, installs the hook.
"""

from __future__ import annotations

import functools
import os
import sys

from vmigrate_lib.engine import cutover
from vmigrate_lib.faces import cli, cli_cutover

KILLED = 137  #: the exit status of a process killed by SIGKILL, as a shell reports it


def hooks_for(spec: str) -> cutover.CutoverHooks:
    """``after:shutdown`` -> hooks that end the process right after that step."""
    when, _, step = spec.partition(":")
    if when not in ("before", "after") or step not in cutover.STEP_NAMES:
        raise SystemExit(f"cutover_killer: bad spec {spec!r} (before|after:<step>)")

    def die(name: str) -> None:
        if name == step:
            os._exit(KILLED)

    return cutover.CutoverHooks(**{f"{when}_step": die})


#: the engine function the CLI's cutover command calls (it imports it from the engine's
#: cutover module when it runs, so the hooked one is set there)
CALLED_AS = "run_cutover"


def main(argv: list[str]) -> int:
    hooks = hooks_for(argv[0])
    if CALLED_AS not in cli_cutover.cmd_cutover.__code__.co_names:
        raise SystemExit(f"cutover_killer: faces.cli_cutover no longer calls {CALLED_AS}")
    setattr(cutover, CALLED_AS, functools.partial(cutover.run_cutover, hooks=hooks))
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
