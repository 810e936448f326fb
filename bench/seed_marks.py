#!/usr/bin/env python3
"""Run the vmigrate CLI with a timestamp at each step of a sync command (bench only).

``python bench/seed_marks.py MARKS_FILE <vmigrate arguments>``: the same command as
``python -m vmigrate_lib.faces.cli``, but the steps of a sync (preflight, workspace
start, the cycle's snapshot, plan, copy, certify, commit, snapshot removal, record,
closing the data plane, the interpreter's exit) are wrapped from outside, here, and
each start and end is appended to MARKS_FILE as ``<time.time()> <mark>`` lines.
Nothing in vmigrate reads this file or knows it is wrapped (no test switch in
production code); ``bench/seed_timeline.py`` lays the marks beside the link's bytes.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any

T0 = time.time()
OUT = open(sys.argv[1], "a", buffering=1)  # for the process's life


def mark(what: str) -> None:
    OUT.write(f"{time.time():.6f} {what}\n")


def wrap(owner: Any, name: str, label: str | None = None) -> None:
    """Replace ``owner.name`` by a function that marks its start and end (an older
    checkout without it: nothing)."""
    fn: Callable[..., Any] | None = getattr(owner, name, None)
    if fn is None:
        return
    tag = label or name

    @functools.wraps(fn)
    def marked(*a: Any, **kw: Any) -> Any:
        mark(f"{tag}>")
        try:
            return fn(*a, **kw)
        finally:
            mark(f"{tag}<")

    setattr(owner, name, marked)


def install() -> None:
    from vmigrate_lib.dataplane import agentchannel, client
    from vmigrate_lib.engine import certify, copier, cycle, snapdelta, sync, transfer
    from vmigrate_lib.faces import cli_sync

    mark("imported")
    wrap(cli_sync, "open_from_args", "open")
    wrap(cli_sync, "run_preflight", "preflight")
    wrap(cli_sync, "close_migration", "close")
    wrap(sync, "start", "ws_start")
    wrap(sync, "run_cycle", "cycle")
    wrap(cycle, "clean_stale")
    wrap(cycle, "prepare_destination", "destination")
    wrap(snapdelta, "take_snapshot", "snapshot")
    wrap(cycle, "plan_disk", "plan")
    wrap(cycle, "copy_disks", "copy")
    wrap(transfer, "_arm_digests", "arm")
    wrap(transfer, "copy_extents", "stream")
    wrap(cycle, "certify_disks", "certify")
    wrap(certify, "compare")
    wrap(cycle, "_commit", "commit")
    wrap(cycle, "_remove_snapshot", "unsnap")
    wrap(cycle, "_finish_record", "record")
    wrap(client.AgentWriter, "close", "writer_close")
    wrap(copier, "_wire")
    # inside preflight: the datastores' opening, peeks and the data paths' probes
    from vmigrate_lib.dataplane.ssh import datastore as ssh_ds
    from vmigrate_lib.dataplane.ssh import direct, transport
    wrap(transport.SshTransport, "start", "agent_start")
    wrap(ssh_ds.SshAgentDatastore, "peek")
    wrap(ssh_ds.SshAgentDatastore, "transfer_modes", "modes")
    wrap(direct, "probe_direct", "probe")
    summaries(agentchannel.AgentChannel)
    atexit.register(mark, "atexit")


def summaries(cls: Any) -> None:
    """Mark each stream's END summary (the packer's level, frames, codec) as it ends."""
    orig = cls.stream

    def stream(self: Any, request: dict[str, Any], *a: Any, **kw: Any) -> Any:
        yield from orig(self, request, *a, **kw)
        mark(f"summary {request.get('op')} " + json.dumps(self.summary, sort_keys=True))

    cls.stream = stream


def main() -> int:
    OUT.write(f"{T0:.6f} python\n")
    atexit.register(mark, "atexit_last")  # registered first: runs after every other one
    install()
    from vmigrate_lib.faces.cli import main as cli_main

    try:
        return cli_main(sys.argv[2:])
    finally:
        mark("main<")


if __name__ == "__main__":
    sys.exit(main())
