"""Guest processes: start detached, tell alive from dead, kill hard.

A VM is on exactly when its guest process lives, and the guest says so itself:
it holds an exclusive ``flock`` on ``guest.lock`` in the VM folder for its whole
life and writes its pid there.  Nothing a launcher records (or fails to record,
when it is killed right after the spawn) decides the power state, and a second
guest on the same folder cannot take the lock, so it exits before it touches a
disk (as VMFS's lock on a running VM's files refuses a second power-on).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import vmigrate_lib

from ..errors import PowerError, TimeoutExpired

LOCK_FILE = "guest.lock"
LOG_FILE = "guest.log"
BOOT_FILE = "boot.json"
GUEST_MODULE = "vmigrate_lib.lab.guest"
#: a guest retries the lock this long: readers hold it (shared) for an instant
LOCK_PATIENCE = 2.0
#: what a control process editing a powered-off VM writes in the lock while it holds it
OFFLINE_MARK = b"offline"

#: children started by this process, kept so they can be reaped
_children: dict[int, subprocess.Popen[bytes]] = {}


def hold_power_lock(vmdir: Path, patience: float = LOCK_PATIENCE) -> int | None:
    """For the guest: take the VM's power lock and record our pid in it.

    Returns the open descriptor (keep it open for the process's life: the lock
    is released when the process ends, however it ends), or None when another
    guest holds it.
    """
    fd = os.open(vmdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if os.pread(fd, 64, 0).startswith(OFFLINE_MARK):  # a control process edits the
                deadline = time.monotonic() + patience     # powered-off VM: wait it out
            elif time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.01)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def powered_off(vmdir: Path) -> Iterator[bool]:
    """For a control process changing a VM's files: hold the power lock meanwhile.

    Yields True while it holds it (a guest started meanwhile, e.g. by a launcher
    killed after its spawn, waits until the change is done), False when a guest
    holds it: the VM is on, the change must go through the guest.
    """
    fd = os.open(vmdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # a guest, or a reader for an instant
                if guest_pid(vmdir, settle=0.0) is not None or time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.pwrite(fd, OFFLINE_MARK + f" {os.getpid()}\n".encode(), 0)
        try:
            yield True
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def lock_holder(vmdir: Path) -> int | None:
    """The pid written in the power lock by the guest holding it; None when no guest holds it."""
    try:
        fd = os.open(vmdir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 64, 0)
            if raw.startswith(OFFLINE_MARK):
                return None  # a control process edits the files of the powered-off VM
            text = raw.decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0  # 0: held, pid not written yet
        return None
    finally:
        os.close(fd)  # also drops our shared lock, if we got it


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


def child_running(pid: int) -> bool:
    """Whether a guest this process spawned has not exited yet (it may not hold its lock yet)."""
    proc = _children.get(pid)
    return proc is not None and proc.poll() is None


def guest_pid(vmdir: Path, settle: float = 2.0) -> int | None:
    """The pid of the VM's running guest, or None when the VM is off.

    Held by a guest that has not written its pid yet (or the stale pid of one
    that just died): asked again for up to ``settle`` seconds.
    """
    deadline = time.monotonic() + settle
    while True:
        pid = lock_holder(vmdir)
        if pid is None:
            return None
        if pid and process_alive(pid, vmdir):
            return pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def spawn_guest(vmdir: Path, config_file: str) -> int:
    """Start the guest detached (own session), logging to ``guest.log``; returns its pid.

    Records nothing: the guest records itself once it holds the power lock.
    """
    pkg_parent = str(Path(vmigrate_lib.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
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
    return True
