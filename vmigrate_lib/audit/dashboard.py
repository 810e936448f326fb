"""The live dashboard of a runbook: an ipywidgets view implementing the Reporter.

The engine reports events and byte progress; this shows them as a progress
bar (bytes and rate), a table of cycles and a plot redrawn per cycle.  Widgets
need JavaScript to be read later, so every event is also one plain line on
stdout (what papermill logs and what a headless run shows), and
:meth:`Dashboard.finish` puts a plain table and a PNG plot beside the widget.
"""

from __future__ import annotations

import html
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import pandas as pd
from IPython import get_ipython

from ..engine.progress import (
    CutoverFinished,
    CycleEnded,
    CycleFailed,
    CycleStarted,
    DiskPlanned,
    Event,
    LineReporter,
    PhaseReached,
    PredictionMade,
    Reporter,
    StepChanged,
    event_info,
    format_event,
)
from ..units import fmt_bytes, fmt_left, fmt_rate, fmt_secs
from . import plots
from .checklist import StepChecklist
from .tables import CYCLE_TYPES, PREDICTION_TYPE, cycles_frame

#: Set to 1 by the runbook runner: no one is watching, print progress lines too.
HEADLESS_ENV = "VMIGRATE_HEADLESS"

_TABLE_COLUMNS = {
    "cycle": "cycle", "kind": "kind", "status": "status", "bytes_changed": "changed",
    "duration_s": "duration", "throughput_Bps": "throughput", "certify": "certify",
    "predicted_downtime_s": "predicted downtime",
}


#: Phases whose bytes the bar counts, and the word it shows for each (copy is the default).
BAR_PHASES = {"certify": "certify", "hash-compare": "hash"}


def ipd() -> Any:
    """``IPython.display`` (untyped: kept behind ``Any`` for mypy --strict)."""
    import IPython.display

    return IPython.display


def is_headless() -> bool:
    """True under the runner (papermill) or outside a Jupyter kernel."""
    if os.environ.get(HEADLESS_ENV) == "1":
        return True
    ip = get_ipython()
    return ip is None or "IPKernelApp" not in getattr(ip, "config", {})


def readable_cycles(df: pd.DataFrame) -> pd.DataFrame:
    """The cycles table with units an operator reads (for widgets, HTML and text)."""
    if df.empty:
        return pd.DataFrame(columns=list(_TABLE_COLUMNS.values()))
    out = df[list(_TABLE_COLUMNS)].rename(columns=_TABLE_COLUMNS).copy()
    out["changed"] = [fmt_bytes(v) for v in df["bytes_changed"]]
    out["duration"] = [fmt_secs(v) for v in df["duration_s"]]
    out["throughput"] = [fmt_rate(v) for v in df["throughput_Bps"]]
    out["predicted downtime"] = [
        "" if v is None or pd.isna(v) else fmt_secs(float(v))
        for v in df["predicted_downtime_s"]
    ]
    return out


def readable_steps(df: pd.DataFrame) -> pd.DataFrame:
    """The steps table as an operator reads it: times with date and zone, whole attempt
    numbers, durations with units, details cut to a line (the CSV keeps them whole)."""
    cols = ["time", "type", "step", "status", "attempt", "duration", "detail"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({
        "time": [t.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(t, pd.Timestamp) else ""
                 for t in df["time"]],
        "type": df["type"], "step": df["step"], "status": df["status"],
        "attempt": ["" if a is None or pd.isna(a) else str(int(a)) for a in df["attempt"]],
        "duration": ["" if v is None or pd.isna(v) else fmt_secs(float(v))
                     for v in df["duration_s"]],
        "detail": [(str(d)[:77] + "...") if len(str(d)) > 80 else str(d)
                   for d in df["detail"].fillna("")],
    })
    return out[cols]


class Dashboard(Reporter):
    """Widgets for a hand run plus plain lines for the record (and headless runs)."""

    def __init__(
        self,
        title: str,
        *,
        budget: float | None = None,
        history: Iterable[Mapping[str, Any]] = (),
        stream: TextIO | None = None,
        headless: bool | None = None,
        min_interval: float = 0.25,
    ) -> None:
        import ipywidgets as w

        self.title = title
        self.budget = budget
        self.headless = is_headless() if headless is None else headless
        self.records: list[dict[str, Any]] = [
            dict(r) for r in history if r.get("type") in CYCLE_TYPES | {PREDICTION_TYPE}
        ]
        self.lines = LineReporter(stream or sys.stdout, min_interval=5.0)
        self.min_interval = min_interval
        self._last_tick = 0.0
        self.cycles_drawn = 0
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="copy",
                                   bar_style="info", layout=w.Layout(width="50%"))
        self.bytes_label = w.Label(value="idle")
        self.status = w.HTML(value=f"<b>{html.escape(title)}</b>: waiting")
        self.table = w.HTML(value="")
        self.plot = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.steps = w.HTML(value="")
        self._step_lines: list[str] = []
        self.checklist: StepChecklist | None = None  # made at the first cutover step
        self.widget = w.VBox([
            self.status,
            w.HBox([self.bar, self.bytes_label]),
            self.table,
            self.plot,
            self.steps,
        ])
        self._redraw()

    # --- Reporter ------------------------------------------------------------------------
    def event(self, ev: Event, /) -> None:
        """Print the plain line, then update the widgets."""
        self.lines.event(ev)
        text = format_event(ev).strip()
        self.status.value = f"<b>{html.escape(self.title)}</b>: {html.escape(text)}"
        if isinstance(ev, CycleEnded):
            self.records.append({"type": "cycle", **ev.record})
            self.bar.value = 1.0
            self.bar.bar_style = "success"
            self._redraw()
        elif isinstance(ev, CycleFailed):
            self.records.append({"type": "cycle_failed", **event_info(ev)})
            self.bar.bar_style = "danger"
            self._redraw()
        elif isinstance(ev, PredictionMade):
            self.records.append({"type": PREDICTION_TYPE, **ev.record})
            self._redraw()
        elif isinstance(ev, CycleStarted):
            self.bar.value = 0.0
            self.bar.bar_style = "info"
            self.bar.description = "copy"
            self.bytes_label.value = "starting"
        elif isinstance(ev, DiskPlanned):
            self._phase("copy")
        elif isinstance(ev, PhaseReached) and ev.phase in BAR_PHASES:
            self._phase(BAR_PHASES[ev.phase])
        elif isinstance(ev, StepChanged):
            self.checklist = self.checklist or StepChecklist()
            self.checklist.step(ev.name, ev.status, ev.seconds)
            self._show_steps()
        elif isinstance(ev, CutoverFinished) and self.checklist is not None:
            downtime = ev.result.get("downtime_s")
            self.checklist.measured = float(downtime) if isinstance(downtime, (int, float)) else None
            self._show_steps()
        elif not isinstance(ev, (PhaseReached, DiskPlanned)):
            self._step_lines.append(text)
            self._show_steps()

    def _show_steps(self) -> None:
        """The checklist and downtime clock (a cutover), then the last other lines."""
        lines = self._step_lines[-(5 if self.checklist else 15):]
        self.steps.value = ((self.checklist.html() if self.checklist else "")
                            + ("<pre>" + html.escape("\n".join(lines)) + "</pre>" if lines else ""))

    def _phase(self, name: str) -> None:
        """The bar now counts another phase's bytes: name it, start it from zero."""
        self.bar.description = name
        self.bar.value = 0.0
        self.bytes_label.value = f"{name}: starting"

    def failed(self, line: str) -> None:
        """The run stopped on an error: say so where the operator is looking (before, a
        failure in opening the hosts left the dashboard "waiting")."""
        self.status.value = (f'<b>{html.escape(self.title)}</b>: <b style="color:#b00">FAILED'
                             f"</b>: {html.escape(line)}")
        self.bar.bar_style = "danger"
        self.bytes_label.value = "stopped"
        if self.checklist is not None:
            self.checklist.failed()
            self._show_steps()

    def progress(self, done: int, total: int, rate: float) -> None:
        """Move the bar (throttled: comm messages are not free)."""
        if self.headless:
            self.lines.progress(done, total, rate)
        now = time.monotonic()
        if now - self._last_tick < self.min_interval and done < total:
            return
        self._last_tick = now
        if self.checklist is not None and self.checklist.down_since is not None:
            self._show_steps()  # the downtime clock moves with the final copy
        self.bar.value = done / total if total else 1.0
        self.bytes_label.value = f"{self.bar.description}: " + (
            f"{fmt_bytes(done)} of {fmt_bytes(total)} at {fmt_rate(rate)}{fmt_left(done, total, rate)}"
            if rate else f"{fmt_bytes(done)} of {fmt_bytes(total)}"
        )

    # --- views ---------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        return cycles_frame(self.records)

    def _redraw(self) -> None:
        df = self.frame()
        self.table.value = readable_cycles(df).to_html(index=False, border=0)
        self.plot.value = plots.png_bytes(plots.dashboard_figure(df, budget=self.budget))
        self.cycles_drawn = len(df)

    def show(self) -> None:
        """Display the widget (in a notebook cell)."""
        ipd().display(self.widget)

    def finish(self) -> None:
        """Put the PNG plot in the output, readable without widgets (the cycles table is the
        audit cell's: shown here too, it was the same table twice)."""
        d = ipd()
        df = self.frame()
        d.display(d.Image(data=plots.png_bytes(plots.dashboard_figure(df, budget=self.budget))))


def make_dashboard(title: str, *, budget: float | None = None,
                   history: Iterable[Mapping[str, Any]] = ()) -> Reporter:
    """A :class:`Dashboard`, or plain lines outside an IPython kernel."""
    if get_ipython() is None:
        return LineReporter()
    dash = Dashboard(title, budget=budget, history=history)
    dash.show()
    return dash
