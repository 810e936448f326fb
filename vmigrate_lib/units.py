"""Parsing and printing of sizes and durations as operators write them."""

from __future__ import annotations

import datetime as dt
import math
import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUM = re.compile(r"\s*([0-9]{1,30}(?:\.[0-9]{0,30})?)\s*([a-zA-Z]{0,3})\s*\Z")
#: Upper bounds: beyond them a value is a typo (or ``.inf``), and ``int()`` / ``sleep()``
#: of it would raise a traceback instead of a sentence.
MAX_SIZE = 1 << 50  #: 1 PiB
MAX_DURATION = 366 * 86400.0  #: a year


def _finite(x: float, limit: float, what: str) -> float:
    """``x`` if it is a number from 0 to ``limit`` (``.nan`` and ``.inf`` are not)."""
    if not math.isfinite(x) or x > limit:
        raise ValueError(f"must be a finite {what} (at most {limit:.0f})")
    if x < 0:
        raise ValueError(f"{what} must not be negative")
    return x


def parse_size(value: str | int | float) -> int:
    """'64KiB' -> 65536, '1.5GB' -> 1500000000; ints pass through.

    Errors never repeat the value (it may be huge, or something pasted by mistake).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("not a size (write e.g. 64KiB, 2GiB, 500MB)")
    if isinstance(value, int):
        return int(_finite(min(value, MAX_SIZE + 1), MAX_SIZE, "size in bytes"))
    if isinstance(value, float):
        return int(_finite(value, MAX_SIZE, "size in bytes"))
    m = _NUM.match(value)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        if value[:40].strip()[:1].isdigit() and len(value) > 40:
            raise ValueError(f"must be a finite size in bytes (at most {MAX_SIZE})")
        raise ValueError("not a size (write e.g. 64KiB, 2GiB, 500MB)")
    return int(_finite(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()], MAX_SIZE,
                       "size in bytes"))


def parse_duration(value: str | int | float) -> float:
    """'120s' -> 120.0, '2m' -> 120.0, '1.5h' -> 5400.0; numbers are seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("not a duration (write e.g. 90s, 5m, 1h)")
    if isinstance(value, int):
        value = min(value, int(MAX_DURATION) + 1)
    if isinstance(value, (int, float)):
        return _finite(float(value), MAX_DURATION, "duration in seconds")
    m = _NUM.match(value)
    if not m or m.group(2).lower() not in _TIME_UNITS:
        if value[:40].strip()[:1].isdigit() and len(value) > 40:
            raise ValueError(f"must be a finite duration in seconds (at most {MAX_DURATION:.0f})")
        raise ValueError("not a duration (write e.g. 90s, 5m, 1h)")
    return _finite(float(m.group(1)) * _TIME_UNITS[m.group(2).lower()], MAX_DURATION,
                   "duration in seconds")


def fmt_duration(s: float) -> str:
    """Seconds as a params file writes them, and :func:`parse_duration` reads back:
    600.0 -> '10m', 5400.0 -> '90m', 7200.0 -> '2h', 2.5 -> '2.5s'."""
    def num(x: float) -> str:  # no exponent ('1e+06' is not a duration)
        return f"{x:.3f}".rstrip("0").rstrip(".")

    if s >= 3600 and s % 3600 == 0:
        return f"{num(s / 3600)}h"
    if s >= 60 and s % 60 == 0:
        return f"{num(s / 60)}m"
    return f"{num(s)}s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def fmt_rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e6:.1f} MB/s"


def fmt_left(done: int, total: int, rate: float) -> str:
    """``", 42.0 s left"`` at ``rate`` bytes per second; "" when done or no rate yet."""
    if rate <= 0 or done >= total:
        return ""
    return f", {fmt_secs((total - done) / rate)} left"


def fmt_utc(epoch: float) -> str:
    """``2026-12-01T04:30:12Z``: an epoch time as people and ISO 8601 read it."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_secs(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
