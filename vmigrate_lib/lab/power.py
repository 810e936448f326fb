"""Guest processes: start detached, tell alive from dead, kill hard.

A VM is on exactly when its guest process lives.  The pid file alone is not
proof (pids are reused, a killed child stays a zombie until reaped), so the
process's command line and state are checked too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import vmigrate_lib

from ..errors import PowerError, TimeoutExpired
from .layout import atomic_write_json

PID_FILE = "guest.pid"
LOG_FILE = "guest.log"
BOOT_FILE = "boot.json"
GUEST_MODULE = "vmigrate_lib.lab.guest"

#: children started by this process, kept so they can be reaped
_children: dict[int, subprocess.Popen[bytes]] = {}


def read_pid(vmdir: Path) -> int | None:
    try:
        return int(json.loads((vmdir / PID_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def process_alive(pid: int, vmdir: Path | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) guest, of ``vmdir`` if given."""
    _reap()
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return False
        if GUEST_MODULE.encode() not in cmdline:
            return False
        return vmdir is None or str(vmdir.resolve()).encode() in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def guest_pid(vmdir: Path) -> int | None:
    """The pid of the VM's running guest, or None when the VM is off."""
    pid = read_pid(vmdir)
    return pid if pid is not None and process_alive(pid, vmdir) else None


def spawn_guest(vmdir: Path, config_file: str) -> int:
    """Start the guest detached (own session), logging to ``guest.log``."""
    pkg_parent = str(Path(vmigrate_lib.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    with contextlib.suppress(FileNotFoundError):
        (vmdir / BOOT_FILE).unlink()
    cmd = [
        sys.executable,
        "-m",
        GUEST_MODULE,
        "--vmdir",
        str(vmdir.resolve()),
        "--config",
        config_file,
    ]
    try:
        with open(vmdir / LOG_FILE, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
            )
    except OSError as exc:
        raise PowerError(f"cannot start guest of {vmdir.name}: {exc}", vm_dir=str(vmdir)) from exc
    _children[proc.pid] = proc
    atomic_write_json(vmdir / PID_FILE, {"pid": proc.pid, "started": time.time()})
    return proc.pid


def wait_dead(pid: int, vmdir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid, vmdir):
        if time.monotonic() >= deadline:
            raise TimeoutExpired(
                f"guest of {vmdir.name} (pid {pid}) did not stop within {timeout:.0f}s",
                pid=pid,
                timeout=timeout,
            )
        time.sleep(0.02)


def kill_guest(vmdir: Path, timeout: float = 30.0) -> bool:
    """Hard power-off: SIGKILL, no flush.  Returns whether a guest was running."""
    pid = guest_pid(vmdir)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_dead(pid, vmdir, timeout)
    clear_pid(vmdir, pid)
    return True


def clear_pid(vmdir: Path, pid: int | None = None) -> None:
    """Remove the pid file (only if it still names ``pid``, when given)."""
    if pid is None or read_pid(vmdir) == pid:
        with contextlib.suppress(FileNotFoundError):
            (vmdir / PID_FILE).unlink()
