"""CLI command ``lab up|status|down``: the embedded lab hypervisor (vmigrate_lib/lab)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Subcommands, WithParams


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``lab`` (it takes no params file)."""
    lab = sub.add_parser("lab", help="the embedded lab hypervisor")
    lab.add_argument("lab_cmd", choices=["up", "status", "down"])
    lab.add_argument("--root", default=".vmigrate-lab", help="lab folder")
    lab.add_argument("--remove", action="store_true", help="with down: delete the lab files")
    lab.set_defaults(func=cmd_lab)


def cmd_lab(args: argparse.Namespace) -> int:
    from ..lab import lifecycle  # here: the other commands do not load the lab

    root = Path(args.root)
    if args.lab_cmd == "up":
        print(f"lab up at {root}")
        print(lifecycle.lab_up(root))
    elif args.lab_cmd == "status":
        print(lifecycle.lab_status(root))
    elif args.lab_cmd == "down":
        lifecycle.lab_down(root, remove=args.remove)
        print(f"lab down at {root}" + (" (files removed)" if args.remove else ""))
    return 0
