"""The cutover dashboard's step checklist and downtime clock.

During a cutover the operator wants two things at a glance: which step runs and
which are left, and how long Alice has been down.  Downtime is counted as the
engine measures it: from the shutdown request to Bob ready (the end of
``wait_ready``); the engine's measured value replaces the clock when it arrives.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from ..units import fmt_secs

#: The cutover's steps in order (``vmigrate_lib.engine.cutover.STEPS``; ``done`` left out).
CUTOVER_STEPS = ("go_no_go", "predelta", "shutdown", "final_sync", "certify", "copy_files",
                 "retire_source", "register", "power_on", "wait_ready", "probes")
#: Steps that run only when the options ask for them: listed once they start.
OPTIONAL_STEPS = frozenset({"retire_source"})
_MARK = {"done": "&#10003;", "started": "&#9654;", "failed": "&#10007;", "": "&middot;"}


class StepChecklist:
    """The steps' states and the downtime clock, rendered as a small HTML block."""

    def __init__(self, steps: Sequence[str] = CUTOVER_STEPS) -> None:
        self.steps = list(steps)
        self.state: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.down_since: float | None = None
        self.up_at: float | None = None
        self.measured: float | None = None

    def step(self, name: str, status: str, seconds: float | None = None,
             now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if name not in self.steps:
            self.steps.append(name)
        self.state[name] = status
        if seconds is not None:
            self.seconds[name] = seconds
        if name == "shutdown" and status == "started" and self.down_since is None:
            self.down_since = now
        if name == "wait_ready" and status == "done":
            self.up_at = now

    def failed(self) -> None:
        """The running step failed."""
        for name, status in self.state.items():
            if status == "started":
                self.state[name] = "failed"

    def clock(self, now: float | None = None) -> str:
        if self.measured is not None:
            return f"downtime {fmt_secs(self.measured)} (measured: shutdown request to ready)"
        if self.down_since is None:
            return "Alice running: no downtime yet"
        end = self.up_at if self.up_at is not None else (time.monotonic() if now is None else now)
        running = "" if self.up_at is not None else " and counting"
        return f"downtime {fmt_secs(end - self.down_since)}{running}"

    def html(self, now: float | None = None) -> str:
        rows = []
        for name in self.steps:
            status = self.state.get(name, "")
            if not status and name in OPTIONAL_STEPS:
                continue
            took = f" {fmt_secs(self.seconds[name])}" if name in self.seconds else ""
            word = {"started": " running", "failed": " FAILED"}.get(status, "")
            rows.append(f"<li>{_MARK[status]} {html.escape(name)}{took}{word}</li>")
        return (f"<b>{html.escape(self.clock(now))}</b>"
                f'<ul style="list-style:none;padding-left:0;margin:2px 0">{"".join(rows)}</ul>')
