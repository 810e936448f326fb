"""CLI commands ``cutover`` and ``rollback``.

Thin: the params file's ``cutover`` section with the flags given on top becomes
:class:`CutoverOptions` (one place: ``CutoverOptions.from_params``); a flag left
out keeps the file's value, and its help names that field and the schema's
default (:func:`vmigrate_lib.faces.common.from_file`), so no default is written
here.  Results become a few lines.  Exit codes as everywhere: 2 = refused before
any change (bad input, no-go, rollback not confirmed), 1 = fault (state
recorded, re-run resumes).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import ParameterError
from ..params import CHOICES, MigrationParams
from ..session import close_migration
from .cli_plan import budget_of, planner_flags
from .common import Subcommands, WithParams, duration_arg, from_file, open_from_args, port_arg

if TYPE_CHECKING:  # the engine's cutover is imported by these commands only (CLI start-up)
    from ..engine.cutover import CutoverOptions


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``cutover`` and ``rollback``."""
    p = with_params(sub.add_parser("cutover", help="switch to the copy: stop, final sync, start"))
    planner_flags(p)
    # Every flag here is None unless given, and then overrides the file's cutover section.
    p.add_argument("--force", action="store_true",
                   help="go even if go/no-go says no (recorded; never read from a file)")
    p.add_argument("--max-sync-age", type=duration_arg, default=None,
                   help=f"the last sync may be at most this old ({from_file('cutover', 'max_sync_age')})")
    p.add_argument("--shutdown-timeout", type=duration_arg, default=None,
                   help=f"graceful shutdown limit ({from_file('cutover', 'shutdown_timeout')})")
    p.add_argument("--allow-hard-poweroff", action=argparse.BooleanOptionalAction, default=None,
                   help="power off hard if the guest does not shut down in time "
                   f"({from_file('cutover', 'allow_hard_poweroff')})")
    p.add_argument("--certify", choices=CHOICES["certify"], default=None,
                   help="certify the final delta (changed), whole disks (full) or not "
                   f"({from_file('cutover', 'certify')})")
    p.add_argument("--network-map", action="append", default=None, metavar="SRC=DST",
                   help="map a source network to a destination network (added to "
                   f"{from_file('cutover', 'network_map')})")
    p.add_argument("--probe-port", action="append", type=port_arg, default=None, metavar="PORT",
                   help="TCP port on the new VM that must accept a connection (replaces "
                   f"{from_file('cutover', 'probes')})")
    p.add_argument("--probe-command", default=None, help="command that must exit 0 "
                   "($VMIGRATE_VM and $VMIGRATE_VM_IP are set; "
                   f"{from_file('cutover', 'probe_command')})")
    p.add_argument("--probe-host", default=None,
                   help=f"address to probe ({from_file('cutover', 'probe_host')}: the VM's IP)")
    p.add_argument("--probe-timeout", type=duration_arg, default=None,
                   help=from_file("cutover", "probe_timeout"))
    p.add_argument("--ready-timeout", type=duration_arg, default=None,
                   help=from_file("cutover", "ready_timeout"))
    p.add_argument("--ready", choices=CHOICES["ready"], default=None,
                   help="how the new VM counts as ready: VMware Tools, or powered on and the "
                   f"probes; auto: from the source's Tools ({from_file('cutover', 'ready')})")
    p.add_argument("--rollback-grace", type=duration_arg, default=None,
                   help="once the new VM ran this long a failure stops instead of rolling back "
                   f"({from_file('cutover', 'rollback_grace')})")
    p.set_defaults(func=cmd_cutover)

    p = with_params(sub.add_parser("rollback", help="back to the source VM"))
    p.add_argument("--yes-lose-bob-writes", action="store_true",
                   help="agree that writes made on the new VM since it started are lost")
    p.set_defaults(func=cmd_rollback)


def cutover_options(args: argparse.Namespace, params: MigrationParams) -> CutoverOptions:
    """The file's ``cutover`` section with the flags that were given on top."""
    from ..engine.cutover import CutoverOptions

    nets: dict[str, str] | None = None
    for item in args.network_map or ():
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:  # the rejected text is not repeated
            raise ParameterError("--network-map: write SRC=DST", parameter="network_map")
        nets = {**(nets or {}), src: dst}
    return CutoverOptions.from_params(
        params.cutover, budget=budget_of(args, params), force=args.force or None,
        max_sync_age=args.max_sync_age, shutdown_timeout=args.shutdown_timeout,
        allow_hard_poweroff=args.allow_hard_poweroff, certify=args.certify, network_map=nets,
        probes=args.probe_port, probe_command=args.probe_command, probe_host=args.probe_host,
        probe_timeout=args.probe_timeout, ready_timeout=args.ready_timeout, ready=args.ready,
        rollback_grace=args.rollback_grace,
        shutdown_s=args.shutdown_time, boot_s=args.boot_time,
        throughput_override=args.throughput)


def cmd_cutover(args: argparse.Namespace) -> int:
    from ..engine.cutover import run_cutover

    m = open_from_args(args, refuse_finished_as="cutover")
    try:
        opts = cutover_options(args, m.params)
        with m.workspace:
            res = run_cutover(m, opts)
    finally:
        close_migration(m)
    # The engine's "cutover done: downtime ... (predicted ...)" line said the figures once.
    print(f"cutover attempt {res.attempt}: {res.status}")
    for w in res.warnings:
        print(f"  warning: {w}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..engine.cutover import run_rollback

    m = open_from_args(args)
    try:
        with m.workspace:
            res = run_rollback(m, confirm_data_loss=args.yes_lose_bob_writes)
    finally:
        close_migration(m)
    print(f"rollback of attempt {res.attempt}: {res.status}; {m.params.vm} is running")
    for w in res.warnings:
        print(f"  warning: {w}")
    return 0
