"""CLI commands ``keep start|status|stop``: the opt-in connection keeper (dataplane/keep).

``keep start --for 30m -p PARAMS`` logs in to the params' SSH hosts once, in a process
of its own, and serves agents to the commands that follow (same host settings only);
``keep status`` lists what each keeper holds; ``keep stop`` ends them.  A keeper also
ends by itself at its expiry, or after ``--idle`` with nothing served.
"""

from __future__ import annotations

import argparse
import time

from ..errors import ParameterError
from ..units import fmt_duration
from .common import Subcommands, WithParams, load_params, positive_duration_arg


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``keep`` and its three actions."""
    keep = sub.add_parser("keep", help="hold SSH logins and agents across commands (opt-in)")
    acts = keep.add_subparsers(dest="keep_action", required=True)
    p = with_params(acts.add_parser("start", help="start a keeper for these params' hosts"))
    p.add_argument("--for", dest="seconds", type=positive_duration_arg, default=1800.0,
                   help="how long it serves at most (default 30m)")
    p.add_argument("--idle", type=positive_duration_arg, default=600.0,
                   help="it ends after this long with nothing served (default 10m)")
    p.add_argument("--spares", type=int, default=2,
                   help="agents kept started per datastore folder (default 2)")
    p.set_defaults(func=cmd_start)
    acts.add_parser("status", help="what each keeper holds").set_defaults(func=cmd_status)
    acts.add_parser("stop", help="end every keeper of yours").set_defaults(func=cmd_stop)


def cmd_start(args: argparse.Namespace) -> int:
    from ..dataplane.keep.control import start
    from ..dataplane.keep.spec import keeper_spec

    spec, skipped = keeper_spec(load_params(args), args.seconds, args.idle,
                                max(0, args.spares))
    for line in skipped:
        print(f"keep: not kept: {line}")
    if not spec["hosts"]:
        raise ParameterError("nothing to keep: no host of these params is reached over SSH",
                             hint="a keeper serves lab hosts with url: ssh://... and vsphere "
                             "hosts' datastores")
    st = start(spec)
    hosts = ", ".join(f"{h['user']}@{h['host']}:{h['port']}" for h in st["hosts"])
    print(f"keep: keeper {st['pid']} holds {hosts} for {fmt_duration(args.seconds)} "
          f"(ends after {fmt_duration(args.idle)} idle); log {st['log']}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..dataplane.keep.control import keepers

    live, stale = keepers()
    now = time.time()
    for pid, st in sorted(live.items()):
        print(f"keeper {pid}: up {fmt_duration(now - st['started'])}, ends in "
              f"{fmt_duration(max(0.0, st['expires'] - now))}, {st['open']} channel(s) open, "
              f"{st['refused']} caller(s) refused")
        for h in st["hosts"]:
            print(f"  {h['user']}@{h['host']}:{h['port']}: {h['logins']} login(s), "
                  f"{h['spares']} spare agent(s), {h['served']} served")
    for path in stale:
        print(f"stale socket (no keeper answers): {path}")
    if not live and not stale:
        print("no keeper")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from ..dataplane.keep.control import stop_all

    pids, stale = stop_all()
    print(f"keep: stopped {len(pids)} keeper(s)" + (f", removed {len(stale)} stale socket(s)"
                                                     if stale else ""))
    return 0
