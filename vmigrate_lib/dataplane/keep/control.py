"""Start, ask and stop keepers from a command (``vmigrate keep``), without paramiko."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ... import errors
from ...errors import KeeperError, VmigrateError
from . import wire
from .place import SUFFIX, check_dir, keep_dir

#: how long ``keep start`` waits for the keeper's logins and spare agents
START_TIMEOUT = 120.0


def start(spec: dict[str, Any]) -> dict[str, Any]:
    """Run a keeper for ``spec`` in a session of its own; its READY status, or its error
    raised here (the same class, so bad input still exits 2)."""
    folder = check_dir(keep_dir(), create=True)
    log_path = folder / time.strftime(f"keeper-%Y%m%dT%H%M%S-{os.getpid()}.log")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vmigrate_lib.dataplane.keep.serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fd,
            start_new_session=True, cwd="/", close_fds=True)
    finally:
        os.close(log_fd)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    line = proc.stdout.readline().decode("utf-8", "replace").strip()
    proc.stdout.close()
    word, _, rest = line.partition(" ")
    if word == "READY":
        out: dict[str, Any] = json.loads(rest)
        out["log"] = str(log_path)
        return out
    proc.wait(START_TIMEOUT)
    if word == "ERROR":
        raise rebuilt(json.loads(rest))
    raise KeeperError(f"the keeper exited before it was ready (status {proc.returncode})",
                      hint=f"see its log {log_path}", log=str(log_path))


def rebuilt(d: dict[str, Any]) -> VmigrateError:
    """The keeper's error as this process's (its class by name, else KeeperError)."""
    cls = getattr(errors, str(d.get("error", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, VmigrateError)):
        cls = KeeperError
    return cls(str(d.get("message", "")), hint=str(d.get("hint", "")) or None)


def sockets() -> list[Path]:
    """The sockets in this user's keeper folder (none when it is absent)."""
    folder = keep_dir()
    if not folder.exists():
        return []
    check_dir(folder)
    return sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX))


def ask(path: Path, op: str, timeout: float = 5.0) -> dict[str, Any]:
    """One ``status`` or ``stop`` request; KeeperError when no keeper answers there."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        wire.send_line(s, {"op": op})
        return wire.recv_line(s)
    except (OSError, ValueError) as exc:
        raise KeeperError(f"no keeper answers on {path.name}: {exc}", path=str(path)) from exc
    finally:
        s.close()


def keepers() -> tuple[dict[int, dict[str, Any]], list[Path]]:
    """Live keepers by pid (their status), and sockets no keeper answers on (stale)."""
    live: dict[int, dict[str, Any]] = {}
    stale = []
    for path in sockets():
        try:
            st = ask(path, "status")
        except KeeperError:
            stale.append(path)
            continue
        st["socket"] = str(path)
        live[int(st["pid"])] = st
    return live, stale


def stop_all() -> tuple[list[int], list[Path]]:
    """Ask every live keeper to stop and remove stale sockets; (pids, removed)."""
    live, stale = keepers()
    for st in live.values():
        ask(Path(st["socket"]), "stop")
    for p in stale:
        p.unlink(missing_ok=True)
    return sorted(live), stale
