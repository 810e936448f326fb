"""What killed test runs left on this machine, stopped before the suite starts
(``scripts/test.sh``): lab guests whose VM folder lies in a pytest temp folder (they run
detached, as a VM outlives its client, and a run killed before its teardown left them
writing), and network namespaces, links and sshd folders of dead test processes.

Run as ``python -m tests.leftovers``; prints one line per thing stopped.  Never touches
a guest outside pytest's temp folders (an operator's own lab) nor a live run's peers.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

from tests.peers import netns
from tests.peers.sshd import cleanup_stale_dirs
from vmigrate_lib.lab.power import GUEST_MODULE


def session_alive(vmdir: str) -> bool:
    """Is the pytest session that owns ``vmdir`` still running?  Its numbered folder
    (``pytest-of-<user>/pytest-N``) holds a ``.lock`` with the session's pid until it ends
    (_pytest/pathlib.py, create_cleanup_lock); a killed session leaves it behind."""
    parts = Path(vmdir).parts
    for i, part in enumerate(parts[:-1]):
        if part.startswith("pytest-of-") and parts[i + 1].startswith("pytest-"):
            try:
                pid = int((Path(*parts[: i + 2]) / ".lock").read_text().split()[0])
                os.kill(pid, 0)
            except (OSError, ValueError, IndexError):
                return False
            return True
    return False


def guests_of_tests() -> list[tuple[int, str]]:
    """(pid, VM folder) of every lab guest whose folder is in a pytest temp folder of a
    session that is over (a live session's guests are its own business)."""
    roots = str(Path(tempfile.gettempdir()) / "pytest-of-")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if GUEST_MODULE in argv and "--vmdir" in argv:
            vmdir = argv[argv.index("--vmdir") + 1]
            if vmdir.startswith(roots) and not session_alive(vmdir):
                found.append((int(proc.name), vmdir))
    return found


def stop_all() -> list[str]:
    said = []
    guests = guests_of_tests()
    for pid, vmdir in guests:
        try:
            os.kill(pid, signal.SIGKILL)
            said.append(f"lab guest {pid} of {vmdir}")
        except ProcessLookupError:
            pass
    if guests:
        time.sleep(0.2)
    if netns.available()[0]:
        said += netns.cleanup_stale()
    said += [f"folder {d}" for d in cleanup_stale_dirs()]
    return said


if __name__ == "__main__":
    for line in stop_all():
        print(f"leftover of an earlier test run stopped: {line}")
