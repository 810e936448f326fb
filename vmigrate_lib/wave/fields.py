"""The wave file's field types: rates, windows, and the problem list every reader shares."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..units import parse_duration, parse_size
from .model import Window

_BITS = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)bit(?:/s)?\s*\Z")
_T = TypeVar("_T")


def parse_rate(value: Any) -> float:
    """'100MB/s', '50MiB', '1Gbit/s' -> bytes per second."""
    if isinstance(value, str):
        m = _BITS.match(value)
        if m:
            mult = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
            return float(m.group(1)) * mult / 8
        value = value.strip().removesuffix("/s")
    return float(parse_size(value))


@dataclass(frozen=True)
class WindowSpec:
    """A window as written: offsets from the wave's start (``+30m``) or ISO times."""

    start: float = 0.0
    end: float | None = None
    absolute: bool = False

    def resolve(self, start_at: float) -> Window:
        base = start_at if self.absolute else 0.0
        end = float("inf") if self.end is None else self.end - base
        return Window(self.start - base, end)


class Problems:
    """Collects one line per problem; ``take`` converts a value or records why not."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.lines.append(f"{where}: {what}")

    def take(self, where: str, value: Any, conv: Callable[[Any], _T], default: _T) -> _T:
        if value is None:
            return default
        try:
            return conv(value)
        except (ValueError, TypeError) as exc:
            self.add(where, str(exc))
            return default


def when(text: Any) -> tuple[float, bool]:
    """'+30m' -> (1800, relative); an ISO time with its zone -> (epoch, absolute)."""
    if isinstance(text, str) and text.strip().startswith("+"):
        return parse_duration(text.strip()[1:]), False
    if isinstance(text, dt.datetime):
        when = text
    elif isinstance(text, str):
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    else:
        raise ValueError("write +DURATION from the wave's start (+30m) or an ISO time with a "
                         "zone (2026-12-01T22:00:00Z)")
    if when.tzinfo is None:
        raise ValueError("an ISO time needs its zone (…Z or +01:00)")
    return when.timestamp(), True


def window_spec(pr: Problems, where: str, raw: Any) -> WindowSpec:
    if raw is None:
        return WindowSpec()
    if not isinstance(raw, Mapping) or set(raw) - {"start", "end"}:
        pr.add(where, "a window is {start: ..., end: ...}")
        return WindowSpec()
    start = pr.take(f"{where}.start", raw.get("start", "+0s"), when, (0.0, False))
    end = pr.take(f"{where}.end", raw.get("end"), when, None)
    if end is not None and end[1] != start[1]:
        pr.add(where, "start and end must both be offsets or both be ISO times")
    elif end is not None and end[0] <= start[0]:
        pr.add(where, "the window ends before it starts")
    return WindowSpec(start[0], end[0] if end else None, start[1])


def mapping(pr: Problems, where: str, raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        pr.add(where, "must be a mapping")
        return {}
    return raw
