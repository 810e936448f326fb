"""CLI commands ``abandon`` and ``release-claim``: the source VM's claim (engine/claim.py).

``abandon`` ends this workspace's hold on the source VM (its copy and workspace
stay; a later ``sync`` claims the VM again).  ``release-claim --migration-id ID``
removes a stale claim of another migration whose workspace is gone; the id must
be the one the claim shows, so a live migration is never released by accident.
"""

from __future__ import annotations

import argparse

from ..errors import ParameterError
from ..session import close_migration
from .common import Subcommands, WithParams, open_from_args


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``abandon`` and ``release-claim``."""
    p = with_params(sub.add_parser(
        "abandon", help="give up this migration: release its claim on the source VM"))
    p.set_defaults(func=cmd_abandon)
    p = with_params(sub.add_parser(
        "release-claim", help="remove another migration's stale claim on the source VM"))
    p.add_argument("--migration-id", required=True,
                   help="the id the claim shows (vmigrate preflight names it)")
    p.set_defaults(func=cmd_release_claim)


def cmd_abandon(args: argparse.Namespace) -> int:
    from ..engine import snapdelta  # here: the other commands do not load them
    from ..engine.claim import release_claim

    m = open_from_args(args)
    try:
        state = m.workspace.current
        if state is None:
            raise ParameterError(f"workspace {m.workspace.root} holds no migration: nothing to abandon",
                                 hint="check --params / --workspace", workspace=str(m.workspace.root))
        with m.workspace:
            co = m.workspace.state.cutover
            if co is not None and co.status in ("running", "rolling_back", "probes_failed", "stopped"):
                raise ParameterError(
                    f"a cutover of this migration is {co.status}; it cannot be abandoned now",
                    hint="finish it (vmigrate cutover) or roll it back (vmigrate rollback) first")
            vm = m.vm()
            mid = m.workspace.state.migration_id
            snapdelta.remove_ours(m, "abandoned by the operator")  # snapshot-delta keeps one
            released = release_claim(m, vm, mid, "abandoned by the operator")
            m.workspace.journal.append("abandoned", migration_id=mid, claim_released=released)
    finally:
        close_migration(m)
    print(f"abandon: migration {mid}: " + ("claim on " + vm.name + " released"
                                           if released else f"no claim on {vm.name}")
          + f"; the copy and workspace {m.workspace.root} are kept")
    return 0


def cmd_release_claim(args: argparse.Namespace) -> int:
    from ..engine.claim import release_claim

    m = open_from_args(args)
    try:
        vm = m.vm()
        why = "stale claim released by the operator"
        if m.workspace.current is not None:
            with m.workspace:
                released = release_claim(m, vm, args.migration_id, why)
        else:
            released = release_claim(m, vm, args.migration_id, why)
    finally:
        close_migration(m)
    print(f"release-claim: {vm.name}: " + (f"claim of migration {args.migration_id} removed"
                                           if released else "no claim to remove"))
    return 0
