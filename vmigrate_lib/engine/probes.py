"""Health probes after cutover: is the new VM really serving?

"Powered on and tools running" is not "the service works": the operator names
TCP ports that must accept a connection and, optionally, a command whose exit
status says yes or no (it gets the VM's name and address in its environment).
Probes retry until a deadline, since services start a little after boot.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ProbeResult:
    name: str  #: "tcp:10.0.0.5:443" or "command"
    ok: bool
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tcp_probe(host: str, port: int, timeout: float) -> ProbeResult:
    """One connection attempt: accepted or not."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok, detail = True, "connection accepted"
    except OSError as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return ProbeResult(f"tcp:{host}:{port}", ok, detail, time.monotonic() - t0)


def command_probe(command: str, env: dict[str, str], timeout: float) -> ProbeResult:
    """Run the operator's command (no shell); exit status 0 means healthy."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            shlex.split(command), env={**os.environ, **env}, capture_output=True,
            timeout=timeout, check=False,
        )
        out = (proc.stdout + proc.stderr).decode(errors="replace").strip()[-500:]
        ok, detail = proc.returncode == 0, f"exit {proc.returncode}" + (f": {out}" if out else "")
    except subprocess.TimeoutExpired:
        ok, detail = False, f"no answer within {timeout:.0f} s"
    except OSError as exc:
        ok, detail = False, f"cannot run: {exc}"
    return ProbeResult("command", ok, detail, time.monotonic() - t0)


def run_probes(
    host: str | None,
    ports: Sequence[int],
    command: str | None,
    *,
    env: dict[str, str],
    deadline_s: float = 30.0,
    attempt_timeout: float = 3.0,
    pause: float = 0.5,
) -> list[ProbeResult]:
    """Retry every probe until all pass or ``deadline_s`` is over; return the last results."""
    end = time.monotonic() + deadline_s
    results: dict[str, ProbeResult] = {}
    while True:
        for port in ports:
            key = f"tcp:{port}"
            if key in results and results[key].ok:
                continue
            if host is None:
                results[key] = ProbeResult(f"tcp:?:{port}", False, "the VM reports no address", 0.0)
            else:
                results[key] = tcp_probe(host, port, attempt_timeout)
        if command and not (results.get("command") and results["command"].ok):
            results["command"] = command_probe(command, env, max(attempt_timeout, 10.0))
        if all(r.ok for r in results.values()) or time.monotonic() >= end:
            return list(results.values())
        time.sleep(pause)
