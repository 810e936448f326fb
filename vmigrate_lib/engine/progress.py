"""How long work shows progress: the engine reports, the faces display.

The engine calls a :class:`Reporter`; the CLI plugs in a progress bar, the
runbooks an ipywidgets dashboard, headless runs one plain line per step.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..units import fmt_bytes, fmt_rate, fmt_secs


class Reporter:
    """No-op base: subclasses override what they show."""

    def event(self, kind: str, /, **info: Any) -> None:
        """A step happened (cycle_start, phase, disk, cycle_end, step, warning, ...)."""

    def progress(self, done: int, total: int, rate: float) -> None:
        """Bytes of the current copy or hash pass."""


class LineReporter(Reporter):
    """One plain line per step: for headless runs, logs and papermill output."""

    def __init__(self, stream: TextIO | None = None, min_interval: float = 5.0) -> None:
        self.stream = stream or sys.stdout
        self.min_interval = min_interval
        self._last = 0.0

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=self.stream, flush=True)

    def event(self, kind: str, /, **info: Any) -> None:
        self._line(format_event(kind, info))

    def progress(self, done: int, total: int, rate: float) -> None:
        now = time.monotonic()
        if self.min_interval and now - self._last < self.min_interval and done < total:
            return
        self._last = now
        pct = 100.0 * done / total if total else 100.0
        self._line(f"  {pct:5.1f}%  {fmt_bytes(done)} of {fmt_bytes(total)}  {fmt_rate(rate)}")


def format_event(kind: str, info: dict[str, Any]) -> str:
    """A readable sentence for an engine event."""
    if kind == "cycle_start":
        return f"cycle {info.get('number')} ({info.get('kind')}) started"
    if kind == "phase":
        return f"  {info.get('phase')}: {info.get('detail', '')}".rstrip(": ")
    if kind == "disk":
        return (
            f"  disk {info.get('key')} {info.get('mode')}: {fmt_bytes(info.get('bytes', 0))} "
            f"in {info.get('extents', 0)} extents"
        )
    if kind == "cycle_end":
        cert = info.get("certify") or {}
        verdict = cert.get("result", "not certified")
        return (
            f"cycle {info.get('number')} ({info.get('kind')}) done in "
            f"{fmt_secs(info.get('duration', 0.0))}: changed {fmt_bytes(info.get('bytes_changed', 0))}, "
            f"sent {fmt_bytes(info.get('bytes_sent', 0))}, "
            f"{fmt_rate(info.get('throughput', 0.0))}, certify {verdict}"
        )
    if kind == "check":
        mark = "ok  " if info.get("ok") else "FAIL"
        return f"  [{mark}] {info.get('name')}: {info.get('detail', '')}"
    details = ", ".join(f"{k}={_short(v)}" for k, v in info.items())
    return f"{kind}: {details}" if details else kind


def _short(value: Any) -> str:
    """Floats to a readable precision (4.1044244111 -> 4.1); everything else as is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
