"""What every CLI command module shares: the params options, loading and opening, and
the argument types.

Each command module (``cli_sync``, ``cli_plan``, ``cli_cutover``, ``cli_claim``,
``cli_runbook``, ``cli_lab``) imports from here and registers its own commands;
``cli`` only assembles the parser.  A flag's default is never written twice: help
texts name the params field the value comes from and read its default from the
schema (:func:`vmigrate_lib.params.default_of`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol

import yaml

from .. import params as params_mod
from ..engine.context import Migration
from ..errors import ParameterError
from ..session import open_migration
from ..units import fmt_duration, parse_duration, parse_size
from .console import make_reporter
from .runbook_guard import refuse_finished

#: Adds ``--params``, ``--set``, ``--workspace`` and ``--vm`` to a subcommand's parser.
WithParams = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


class Subcommands(Protocol):
    """Where a command module registers its commands: what ``add_subparsers()`` returns
    (argparse's own class for it is private)."""

    def add_parser(self, name: str, /, **kwargs: Any) -> argparse.ArgumentParser: ...


def with_params(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every command that reads a params file takes."""
    p.add_argument("--params", "-p", required=True, help="YAML params file")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a parameter, e.g. --set sync.certify=full")
    p.add_argument("--workspace", help="override the workspace folder")
    p.add_argument("--vm", help="override the source VM name")
    return p


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--set NAME=VALUE`` (YAML scalars), ``--workspace`` and ``--vm`` as dotted keys."""
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
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_params(args: argparse.Namespace) -> params_mod.MigrationParams:
    """The params file with the command line's overrides, checked (bad input: exit 2)."""
    return params_mod.load(args.params, overrides(args))


def open_from_args(args: argparse.Namespace, refuse_finished_as: str = "") -> Migration:
    """Load the params and open the migration (both hosts, the workspace, a reporter).

    ``refuse_finished_as`` ("sync", "cutover"): refuse, before any host is opened, a
    workspace whose cutover is done (exit 2), as ``vmigrate run`` does."""
    p = load_params(args)
    if refuse_finished_as:
        refuse_finished(refuse_finished_as, p, what="command")
    return open_migration(p, make_reporter(args.quiet))


def from_file(section: str, name: str) -> str:
    """Where a flag's value comes from when it is not given, for its help:
    ``from_file("cutover", "max_sync_age")`` -> ``"cutover.max_sync_age, 10m"``."""
    value = params_mod.default_of(section, name)
    if isinstance(value, bool):
        shown = "yes" if value else "no"
    elif name in params_mod.DURATIONS:
        shown = fmt_duration(float(value))
    elif value in ("", (), {}):
        shown = "none"
    else:
        shown = str(value)
    return f"{section}.{name}, {shown}" if section else f"{name}, {shown}"


# --- argument types (argparse: a ValueError's text becomes the one-line usage error) ---------


def duration_arg(text: str) -> float:
    """``90s``, ``5m``, ``1h`` or seconds (:func:`vmigrate_lib.units.parse_duration`)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_duration_arg(text: str) -> float:
    """A duration above zero (a timeout)."""
    value = duration_arg(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def rate_arg(text: str) -> float:
    """``50MB`` or ``50MB/s`` -> bytes per second."""
    try:
        return float(parse_size(text.removesuffix("/s")))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int_arg(text: str) -> int:
    """A whole number of at least 1 (cycles)."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def port_arg(text: str) -> int:
    """A TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("not a port number") from exc
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("a port is between 1 and 65535")
    return value
