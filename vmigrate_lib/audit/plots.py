"""matplotlib figures of a migration, drawn from the audit tables.

Figures are built on the object API with the Agg canvas (no pyplot, no GUI
backend), so they render the same in a kernel, under papermill and in a CLI,
and are saved as PNG beside the CSV: the evidence reads without JavaScript.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .tables import PHASES, AuditError

_MIB = 1024.0 * 1024.0


def new_figure(width: float = 6.4, height: float = 3.6) -> Figure:
    """A figure drawn off screen (Agg, no pyplot state): safe in threads and headless runs."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _empty(ax: object, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)  # type: ignore[attr-defined]


def _per_cycle(cycles: pd.DataFrame, ylabel: str, title: str,
               draw: Callable[[Any], None]) -> Figure:
    """One axes over the cycles, with the common frame (and a note when there are none)."""
    fig = new_figure()
    ax = fig.add_subplot()
    if cycles.empty:
        _empty(ax, "no cycles yet")
    else:
        draw(ax)
    ax.set_xlabel("cycle")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def delta_bytes(cycles: pd.DataFrame) -> Figure:
    """Bytes changed per cycle: it should fall as cycles get shorter."""

    def draw(ax: Any) -> None:
        colors = ["tab:gray" if k == "seed" else "tab:blue" for k in cycles["kind"]]
        ax.bar(cycles["cycle"].astype(str), cycles["bytes_changed"] / _MIB, color=colors)

    return _per_cycle(cycles, "changed (MiB)", "Delta size per cycle (grey: seed)", draw)


def phase_durations(cycles: pd.DataFrame) -> Figure:
    """Seconds per phase of each cycle, stacked: shows where the time goes."""

    def draw(ax: Any) -> None:
        x = cycles["cycle"].astype(str)
        bottom = pd.Series([0.0] * len(cycles), index=cycles.index)
        for phase in PHASES:
            col = cycles[f"{phase}_s"].fillna(0.0)
            if float(col.sum()) <= 0:
                continue
            ax.bar(x, col, bottom=bottom, label=phase)
            bottom = bottom + col
        ax.legend(fontsize="small")

    return _per_cycle(cycles, "seconds", "Duration per phase", draw)


def throughput(cycles: pd.DataFrame) -> Figure:
    """Copy throughput per cycle (MB/s): the planner's input."""

    def draw(ax: Any) -> None:
        ax.plot(cycles["cycle"], cycles["throughput_Bps"] / 1e6, marker="o")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # cycles are whole numbers

    return _per_cycle(cycles, "MB/s", "Copy throughput per cycle", draw)


def _predicted(ax: Any, cycles: pd.DataFrame) -> bool:
    """The planner's predicted downtime after each cycle; False when there is none yet."""
    pred = cycles.dropna(subset=["predicted_downtime_s"]) if not cycles.empty else cycles
    if pred.empty:
        return False
    ax.plot(pred["cycle"], pred["predicted_downtime_s"].astype(float), marker="o",
            label="predicted")
    return True


#: A budget more than this many times the largest value is named, not drawn: a line at
#: 120 s squeezed 4-6 s values into the bottom tenth of the plot.
OFF_SCALE = 3.0


def budget_line(ax: Any, budget: float | None, values: list[float]) -> None:
    """Draw the budget as a line when it is on the data's scale, else name it in the
    legend; the y axis is scaled to what is drawn."""
    top = max(values, default=0.0)
    if budget is not None and (top <= 0 or budget <= OFF_SCALE * top):
        ax.axhline(budget, color="tab:red", linestyle="--", label=f"budget {budget:.0f} s")
        top = max(top, budget)
    elif budget is not None:
        ax.plot([], [], color="tab:red", linestyle="--",
                label=f"budget {budget:.0f} s (above this scale)")
    ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)


def downtime(cycles: pd.DataFrame, *, budget: float | None = None,
             actual: float | None = None, go_no_go: float | None = None) -> Figure:
    """Predicted downtime after each cycle against the budget, the go/no-go prediction
    and the measured downtime of the cutover."""
    fig = new_figure()
    ax = fig.add_subplot()
    drawn = _predicted(ax, cycles)
    values = ([float(v) for v in cycles["predicted_downtime_s"].dropna()]
              if not cycles.empty else [])
    if budget is None and not cycles.empty and cycles["budget_s"].notna().any():
        budget = float(cycles["budget_s"].dropna().iloc[-1])
    last_final = not cycles.empty and cycles["kind"].iloc[-1] == "final"
    x = float(cycles["cycle"].max()) + (0 if last_final else 1) if not cycles.empty else 1.0
    if go_no_go is not None:
        ax.scatter([x], [go_no_go], facecolors="none", edgecolors="tab:blue", marker="D",
                   s=80, zorder=3, label=f"go/no-go prediction {go_no_go:.1f} s")
        values.append(go_no_go)
    if actual is not None:
        ax.scatter([x], [actual], color="black", marker="*", s=120, zorder=3,
                   label=f"measured at cutover {actual:.1f} s")
        values.append(actual)
    budget_line(ax, budget, values)
    if not drawn and actual is None:
        _empty(ax, "no prediction yet")
    else:
        ax.legend(fontsize="small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("cycle" + (" (star: the cutover)" if actual is not None else ""))
    ax.set_ylabel("seconds")
    ax.set_title("Predicted vs measured downtime")
    return fig


def dashboard_figure(cycles: pd.DataFrame, *, budget: float | None = None) -> Figure:
    """The live plot: delta size and duration per cycle, predicted downtime vs budget."""
    fig = new_figure(9.0, 3.4)
    ax1, ax3 = fig.subplots(1, 2)
    if cycles.empty:
        _empty(ax1, "waiting for the first cycle")
    else:
        x = cycles["cycle"]
        ax1.bar(x, cycles["bytes_changed"] / _MIB, color="tab:blue", alpha=0.7)
        ax2 = ax1.twinx()
        ax2.plot(x, cycles["duration_s"], color="tab:orange", marker="o")
        ax2.set_ylabel("duration (s)", color="tab:orange")
        ax2.set_ylim(bottom=0)
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax3.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("cycle")
    ax1.set_ylabel("changed (MiB)", color="tab:blue")
    ax1.set_title("Delta size and duration per cycle")
    _predicted(ax3, cycles)
    budget_line(ax3, budget, [float(v) for v in cycles["predicted_downtime_s"].dropna()]
                if not cycles.empty else [])
    if ax3.get_legend_handles_labels()[0]:
        ax3.legend(fontsize="small")
    ax3.set_xlabel("cycle")
    ax3.set_ylabel("seconds")
    ax3.set_title("Predicted downtime vs budget")
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for widgets and IPython Image outputs)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_figures(figures: Mapping[str, Figure], folder: Path) -> list[Path]:
    """Write each figure as ``<name>.png``."""
    folder = Path(folder)
    paths = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, fig in figures.items():
            p = folder / f"{name}.png"
            fig.savefig(p, format="png")
            paths.append(p)
    except OSError as exc:
        raise AuditError(f"cannot write figures to {folder}: {exc.strerror}",
                         folder=str(folder)) from exc
    return paths
