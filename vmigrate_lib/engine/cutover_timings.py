"""What an earlier cutover measured, for the planner: from the journal, never from a clock.

A cutover that was not resumed and needed no hard power-off journals
``cutover_measured`` (shutdown, final copy and boot, seconds); its ``step`` records
and its final ``cycle`` record say the rest:

* ``decide_s``: the go/no-go step (it plans at its start; the guest writes until it
  is stopped, so this time is in the final delta's window);
* ``final_fixed_s``: the final phase (shutdown done -> registering) less its copy
  and certify, i.e. what the final phase costs whatever it copies: snapshot,
  change query, commit, clean-up, copying the configuration files, connections.

A rehearsal (a forced cutover that is rolled back) measures all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .cycle_records import CycleRecord

#: The journal record type with the timings a cutover measured.
MEASURED_TYPE = "cutover_measured"


@dataclass(frozen=True)
class CutoverTimings:
    """Seconds measured by the latest cutover that measured each (None: never)."""

    shutdown: float | None = None
    boot: float | None = None
    decide: float | None = None
    final_fixed: float | None = None


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def cutover_timings(records: Iterable[Mapping[str, Any]]) -> CutoverTimings:
    """The timings of the latest measured cutover (each field: the latest that had it)."""
    shutdown = boot = decide = final_fixed = None
    decided: dict[Any, float] = {}
    final: CycleRecord | None = None
    for rec in records:
        t = rec.get("type")
        if t == "step" and rec.get("name") == "go_no_go":
            start = _num(rec.get("start"))
            end = _num(rec.get("end"))
            if rec.get("status") == "done" and end is not None and start is not None:
                decided[rec.get("attempt")] = end - start
        elif t == "cycle" and rec.get("kind") == "final":
            final = CycleRecord.from_json(rec)
        elif t == MEASURED_TYPE:
            shutdown = _num(rec.get("shutdown_s")) if "shutdown_s" in rec else shutdown
            boot = _num(rec.get("boot_s")) if "boot_s" in rec else boot
            decide = decided.get(rec.get("attempt"), decide)
            copy_s = _num(rec.get("final_copy_s"))
            if copy_s is not None and final is not None:
                moving = final.phase("copy") + final.phase("certify") + final.phase("hash")
                final_fixed = max(0.0, copy_s - moving)
    return CutoverTimings(shutdown=shutdown, boot=boot, decide=decide, final_fixed=final_fixed)


def measured_timings(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Shutdown and boot seconds of the latest cutover that measured them."""
    t = cutover_timings(records)
    out = {"shutdown_s": t.shutdown, "boot_s": t.boot}
    return {k: v for k, v in out.items() if v is not None}


__all__ = ["MEASURED_TYPE", "CutoverTimings", "cutover_timings", "measured_timings"]
