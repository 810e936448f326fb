"""The schedule as a table and as Gantt charts (one PNG per host pair).

Bars: seed (blue), warm delta cycles (grey), cutover (green, red when it misses its
window or is over budget); the group's window is shaded.  matplotlib with the Agg
backend, so no display is needed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..units import fmt_bytes, fmt_rate
from .schedule import Schedule, Slot


def _t(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x / 60:.1f}m" if x >= 120 else f"{x:.0f}s"


def table_lines(sched: Schedule) -> list[str]:
    """One line per VM, in start order, then the verdict counts and the makespan."""
    rows = [("vm", "group", "pair", "seed", "share", "seed start", "seed end", "ready",
             "cutover", "downtime", "verdict")]
    for s in sorted(sched.slots, key=lambda s: (math.isnan(s.seed_start), s.seed_start)):
        rows.append((s.vm.name, s.vm.group, str(s.vm.pair), fmt_bytes(s.vm.facts.seed_bytes),
                     fmt_rate(s.est.share), _t(s.seed_start), _t(s.seed_end), _t(s.ready),
                     _t(s.cut_start), f"{s.est.downtime_s:.0f}s",
                     s.verdict + (f": {s.why}" if s.why else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    counts: dict[str, int] = {}
    for s in sched.slots:
        counts[s.verdict] = counts.get(s.verdict, 0) + 1
    out.append(f"{len(sched.slots)} VMs: " + ", ".join(f"{n} {v}" for v, n in
                                                       sorted(counts.items()))
               + f"; the wave takes ~{_t(sched.makespan)}")
    return out


def _bars(ax: object, i: int, s: Slot) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    if not math.isnan(s.seed_start):
        ax.broken_barh([(s.seed_start, (s.seed_end if not math.isnan(s.seed_end) else
                                        s.seed_start) - s.seed_start)], (i - 0.4, 0.8),
                       color="tab:blue")
    if not math.isnan(s.seed_end):
        until = s.cut_start if not math.isnan(s.cut_start) else s.end
        ax.broken_barh([(s.seed_end, max(0.0, until - s.seed_end))], (i - 0.25, 0.5),
                       color="lightgrey")
    if not math.isnan(s.cut_start):
        ax.broken_barh([(s.cut_start, s.cut_end - s.cut_start)], (i - 0.4, 0.8),
                       color="tab:green" if s.verdict == "fits" else "tab:red")


def save_gantt(sched: Schedule, folder: Path) -> list[Path]:
    """One PNG per host pair in ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for pair, slots in sorted(sched.by_pair().items(), key=lambda kv: str(kv[0])):
        slots = sorted(slots, key=lambda s: (math.isnan(s.seed_start), s.seed_start))
        fig, ax = plt.subplots(figsize=(10, 1.5 + 0.3 * len(slots)))
        for w in {sched.plan.group(s.vm.group).window for s in slots}:
            if math.isfinite(w.end):  # each group's window, once
                ax.axvspan(w.start, w.end, ymin=0, ymax=1, color="honeydew", zorder=0)
        for i, s in enumerate(slots):
            _bars(ax, i, s)
        ax.set_yticks(range(len(slots)), [s.vm.name for s in slots])
        ax.invert_yaxis()
        ax.set_xlabel("seconds from the wave's start (blue seed, grey warm, green cutover)")
        ax.set_title(f"wave {sched.plan.name}: {pair} "
                     f"({fmt_rate(sched.plan.limits.bandwidth_of(pair))})")
        fig.tight_layout()
        path = folder / f"gantt-{re.sub(r'[^A-Za-z0-9._-]', '_', str(pair))}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths
