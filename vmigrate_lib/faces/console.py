"""Terminal output for the CLI: a progress bar on a TTY, plain lines otherwise, and
library warnings as one ``vmigrate: warning:`` line each on stderr."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, TextIO

from ..engine.progress import Event, LineReporter, Reporter, format_event


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

    def event(self, ev: Event, /) -> None:
        self._close_bar()
        print(format_event(ev), flush=True)

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


#: How a warning starts on stderr; the CLI's own failure is the one ``vmigrate: error:`` line.
WARNING_PREFIX = "vmigrate: warning: "


class OneLineFormatter(logging.Formatter):
    """A log record as one line: the prefix, the message with its whitespace (newlines
    included) folded, and an attached exception named instead of a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            msg = f"{msg} ({type(exc).__name__}: {exc})"
        return WARNING_PREFIX + " ".join(msg.split())


class WarningLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`warnings_as_lines` installs on the root logger (one at a time)."""


def warnings_as_lines(stream: TextIO | None = None) -> logging.Handler:
    """Send what libraries log at WARNING and above, and ``warnings.warn``, to stderr as one
    ``vmigrate: warning: ...`` line each.

    Without a handler, :mod:`logging` prints a bare message (Python's last-resort handler),
    and :mod:`warnings` prints the source line under it: neither says it is vmigrate's,
    and a multi-line record breaks "errors are one line".  Installing it again (a second
    ``main()`` in one process) replaces the previous one.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, WarningLines)]:
        root.removeHandler(old)
    handler = WarningLines(stream if stream is not None else sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(OneLineFormatter())
    root.addHandler(handler)
    log = logging.getLogger("vmigrate.warnings")

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        log.warning("%s (%s)", message, category.__name__)

    warnings.showwarning = show
    return handler
