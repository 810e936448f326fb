"""A lab VM's history (``vm-events.log``, JSON lines): what was done to it that
change tracking may not show, as vCenter's event history records it for a real VM
(``VmReconfiguredEvent`` and the tasks of a revert or an extend).

Appended by the lab host's control operations (resize, add or remove a disk; a
change-tracking reset needs none: its new epoch invalidates the change ids); read
by :meth:`LabHost.changes_since`.  A runtime file
(``.log``): never copied to Bob.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..control.host import VmChange

EVENTS_FILE = "vm-events.log"


def record(vmdir: Path, kind: str, detail: str) -> None:
    """Append one event (one short line, O_APPEND: whole even with a guest running)."""
    line = json.dumps({"kind": kind, "at": time.time(), "detail": detail}) + "\n"
    fd = os.open(vmdir / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def since(vmdir: Path, t: float) -> list[VmChange]:
    """The events after ``t``; a torn last line (a crash mid-append) is skipped."""
    try:
        lines = (vmdir / EVENTS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            change = VmChange(str(d["kind"]), float(d["at"]), str(d["detail"]))
        except (ValueError, KeyError, TypeError):
            continue
        if change.at > t:
            out.append(change)
    return out
