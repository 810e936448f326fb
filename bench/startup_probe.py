#!/usr/bin/env python3
"""The phase probe of bench_startup.py: one ``vmigrate`` command run in this process, its
phases timed by wrapping the functions that carry them (connect + auth, agent starts,
open hosts, preflight, the cycle, close), its requests, round trips and SSH exec channels
counted.  Prints one ``PROBE {json}`` line on stderr.

    python bench/startup_probe.py sync --cycles 1 --params PARAMS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's vmigrate_lib


def probe_main(argv: list[str]) -> int:
    """In the child: time the CLI's phases by wrapping the functions that carry them."""
    t_start = time.perf_counter()
    t = time.perf_counter()
    from vmigrate_lib.faces import cli

    imports = time.perf_counter() - t
    from collections import defaultdict

    from vmigrate_lib.dataplane import agentchannel
    from vmigrate_lib.dataplane.ssh import connection
    from vmigrate_lib.faces import cli_sync

    secs: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    ops: dict[str, int] = defaultdict(int)

    def wrap(obj: Any, name: str, key: str) -> None:
        real = getattr(obj, name)

        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                secs[key] += time.perf_counter() - t
                counts[key] += 1

        setattr(obj, name, timed)

    wrap(connection.SshConnection, "_connect", "connect+auth")
    wrap(agentchannel.AgentChannel, "_handshake", "agent start")
    wrap(cli_sync, "open_from_args", "open hosts")
    wrap(cli_sync, "run_preflight", "preflight")
    wrap(cli_sync, "run_cycles", "cycle")
    wrap(cli_sync, "close_migration", "close")
    real_req = agentchannel.AgentChannel.request

    def request(self: Any, op: str, **args: Any) -> Any:
        ops[op] += 1
        return real_req(self, op, **args)

    agentchannel.AgentChannel.request = request  # type: ignore[method-assign]
    real_flush, real_recv = agentchannel.AgentChannel.flush, agentchannel.AgentChannel.recv_frame
    waiting: set[int] = set()

    def flush(self: Any) -> None:
        real_flush(self)
        waiting.add(id(self))

    def recv_frame(self: Any, *args: Any, **kwargs: Any) -> Any:
        if id(self) in waiting:  # the first answer after a flush: a round trip
            waiting.discard(id(self))
            counts["round trips"] += 1
        return real_recv(self, *args, **kwargs)

    agentchannel.AgentChannel.flush = flush  # type: ignore[method-assign]
    agentchannel.AgentChannel.recv_frame = recv_frame  # type: ignore[method-assign]
    real_requests = getattr(agentchannel.AgentChannel, "requests", None)
    if real_requests is not None:  # pipelined requests (absent in older trees)
        def requests(self: Any, calls: Any) -> Any:
            for op, _args in calls:
                ops[op] += 1
            return real_requests(self, calls)

        agentchannel.AgentChannel.requests = requests  # type: ignore[method-assign]
    def count_execs(paramiko: Any) -> Any:
        if getattr(paramiko.Channel.exec_command, "counted", False):
            return paramiko
        real_exec = paramiko.Channel.exec_command

        def exec_command(self: Any, command: str) -> Any:
            counts["exec channels"] += 1
            return real_exec(self, command)

        exec_command.counted = True  # type: ignore[attr-defined]
        paramiko.Channel.exec_command = exec_command
        return paramiko

    try:  # paramiko loads at its first use: count its execs from then on
        from vmigrate_lib.dataplane.ssh import paramiko_lazy
    except ImportError:  # an older tree loads it with the data plane
        import paramiko as loaded

        count_execs(loaded)
    else:
        real_load = paramiko_lazy.load
        paramiko_lazy.load = lambda: count_execs(real_load())
    t = time.perf_counter()
    rc = cli.main(argv)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {
        "pandas", "matplotlib", "pyVmomi", "papermill", "nbformat", "IPython", "ipywidgets",
        "numpy", "jupyter_client"})
    print("PROBE " + json.dumps({
        "rc": rc, "imports": imports, "main": time.perf_counter() - t,
        "probe_total": time.perf_counter() - t_start, "secs": secs, "counts": counts,
        "requests": ops, "heavy modules": heavy}), file=sys.stderr)
    return int(rc)


if __name__ == "__main__":
    sys.exit(probe_main(sys.argv[1:]))
