"""Planner unit tests: pure arithmetic over journal-shaped cycle records."""

from __future__ import annotations

from typing import Any

import pytest

from vmigrate_lib.engine.planner import MEASURED_TYPE, plan

MB = 1e6


def cyc(kind: str, changed: float, interval: float | None, copy: float, duration: float | None = None,
        at: float = 1000.0) -> dict[str, Any]:
    return {"type": "cycle", "status": "ok", "kind": kind, "bytes_changed": changed,
            "interval": interval, "phases": {"copy": copy, "snapshot": 0.3, "query": 0.2,
                                            "cleanup": 5.0}, "snapshot_at": at,
            "duration": duration if duration is not None else copy + 0.5}


def history(dirty: float, thr: float, intervals: list[float]) -> list[dict[str, Any]]:
    out = [cyc("seed", 1000 * MB, None, 1000 * MB / thr)]
    for i in intervals:
        out.append(cyc("delta", dirty * i, i, dirty * i / thr))
    return out


def test_certify_rate_adds_to_the_final_copy() -> None:
    hist = history(10 * MB, 100 * MB, [10])
    hist[-1].update(certify_mode="changed")
    hist[-1]["phases"]["certify"] = 10 * MB * 10 / (200 * MB)  # certify at 200 MB/s
    p = plan(hist, budget=60, shutdown_s=1, boot_s=1)
    q = plan(hist, budget=60, shutdown_s=1, boot_s=1, certify="none")
    assert p.overhead - q.overhead == pytest.approx(p.final_bytes / (200 * MB))


def test_dirty_at_or_above_throughput_wont_converge_with_advice() -> None:
    p = plan(history(50 * MB, 40 * MB, [60, 60]), budget=120, shutdown_s=10, boot_s=20)
    assert not p.converged and not p.will_converge
    assert p.dirty_rate == pytest.approx(50 * MB)
    assert p.throughput == pytest.approx(40 * MB)
    for word in ("bigger window", "bandwidth", "quieter hour"):
        assert word in p.advice


def test_equal_rates_also_wont_converge() -> None:
    p = plan(history(40 * MB, 40 * MB, [60]), budget=90, shutdown_s=10, boot_s=20)
    assert not p.converged and not p.will_converge


def test_converges_as_interval_shrinks() -> None:
    """On a link twice the dirty rate: a long last cycle leaves a final delta too big for the
    budget even after one more delta; shrinking the interval brings it within."""
    ints = [80.0, 40.0, 20.0, 10.0, 5.0]
    hist = history(10 * MB, 20 * MB, ints[:1])
    p = plan(hist, budget=8, shutdown_s=2, boot_s=2, target_interval=5)
    # final window = the pre-shutdown delta + shutdown; snapshot + query (0.5 s) count
    assert p.will_converge and p.predelta
    assert p.predicted_downtime == pytest.approx(2 + 2 + 0.5 + 10 * MB * p.window / (20 * MB))
    assert p.next_interval == pytest.approx(40.0)
    assert not p.converged and p.predicted_downtime > 8
    p2 = plan(history(10 * MB, 20 * MB, ints), budget=8, shutdown_s=2, boot_s=2,
              target_interval=5)
    assert p2.converged and "converged" in p2.advice
    assert p2.next_interval == 5.0
    d = p2.to_dict()
    assert d["converged"] is True and d["predicted_downtime"] == p2.predicted_downtime


def test_not_yet_recommends_shrinking_interval() -> None:
    p = plan(history(10 * MB, 20 * MB, [300]), budget=60, shutdown_s=5, boot_s=5,
             target_interval=10, now=1000 + 300)
    assert not p.converged and p.will_converge
    assert p.next_interval == 150.0
    assert "not yet" in p.advice


def test_throughput_override() -> None:
    hist = history(50 * MB, 40 * MB, [60])
    p = plan(hist, budget=120, shutdown_s=10, boot_s=20, throughput_override=500 * MB)
    assert p.throughput == 500 * MB and p.throughput_source == "override"
    assert p.will_converge


def test_budget_below_fixed_costs() -> None:
    p = plan(history(1 * MB, 100 * MB, [10]), budget=20, shutdown_s=15, boot_s=15)
    assert not p.converged and not p.will_converge
    assert "alone take" in p.advice


def test_measured_timings_beat_parameters() -> None:
    hist: list[dict[str, Any]] = history(1 * MB, 100 * MB, [10])
    hist.append({"type": MEASURED_TYPE, "shutdown_s": 2.0, "boot_s": 3.0})
    hist.append({"type": "step", "name": "shutdown"})  # other records are ignored
    p = plan(hist, budget=60, shutdown_s=30, boot_s=60)
    assert (p.shutdown, p.shutdown_source, p.boot, p.boot_source) == (2.0, "measured", 3.0, "measured")
    assert p.converged


def test_no_data_yet() -> None:
    p = plan([], budget=60)
    assert not p.converged and p.will_converge and "seed" in p.advice
    p = plan(history(1 * MB, 100 * MB, []), budget=60)
    assert not p.converged and "delta cycle" in p.advice


def test_a_sync_long_ago_gets_one_more_delta_before_the_shutdown() -> None:
    """The final delta holds every write since the last snapshot; when that is long ago the
    cutover runs one more delta cycle first (predelta), and the window is that cycle's
    duration plus the shutdown.  A sync seconds old (PREDELTA_FRESH_S) is left as it is."""
    hist = history(10 * MB, 100 * MB, [10])
    fresh = plan(hist, budget=60, shutdown_s=1, boot_s=1, now=1000 + 0.5)
    early = plan(hist, budget=60, shutdown_s=1, boot_s=1, now=1000 + 8)
    late = plan(hist, budget=60, shutdown_s=1, boot_s=1, now=1000 + 500)
    assert not fresh.predelta and fresh.window == pytest.approx(0.5 + 1)
    assert early.predelta and late.predelta
    # the delta copies 500 s of writes at 100 MB/s, after its 0.2 s of query and clean-up
    assert late.predelta_s == pytest.approx(0.2 + 500 * 10 * MB / (100 * MB))
    assert late.window == pytest.approx(late.predelta_s + 1)
    assert late.final_bytes > early.final_bytes > fresh.final_bytes


def test_working_set_fit_from_shrinking_intervals() -> None:
    hot, cold = 40 * MB, 2 * MB  # a hot set dirtied whole every cycle, plus cold writes
    out = [cyc("seed", 1000 * MB, None, 10.0)]
    for i in (8.0, 4.0, 2.0, 1.0):
        out.append(cyc("delta", hot + cold * i, i, (hot + cold * i) / (100 * MB)))
    p = plan(out, budget=60, shutdown_s=1, boot_s=1)
    assert p.working_set == pytest.approx(hot)
    assert p.dirty_rate == pytest.approx(cold)
    assert p.final_bytes == pytest.approx(hot + cold * p.window)
