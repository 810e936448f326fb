"""Terminal output for the CLI: a progress bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from ..engine.progress import LineReporter, Reporter, format_event


class BarReporter(Reporter):
    """tqdm progress bar for copies and hashes, a line for every step."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar: Any = None

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def event(self, kind: str, /, **info: Any) -> None:
        self._close_bar()
        print(format_event(kind, info), flush=True)

    def progress(self, done: int, total: int, rate: float) -> None:
        if self._bar is None or self._bar.total != total:
            self._close_bar()
            self._bar = self._tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                   leave=False, dynamic_ncols=True)
        self._bar.update(done - self._bar.n)


def make_reporter(quiet: bool = False) -> Reporter:
    if quiet:
        return Reporter()
    if sys.stdout.isatty():
        return BarReporter()
    return LineReporter()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain fixed-width table (no pandas needed in the CLI's hot path)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
