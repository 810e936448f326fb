"""The paper schedule (issue 15 items 2 and 6): limits, order, windows, convergence.

What it proves, on the pure model: no host or pair ever runs more VMs than its limit; a
group's cutovers start only once every VM of the groups it comes after is over; a VM
whose seed ends after its window closes is named "misses window" (the Forklift complaint:
VMs over the in-flight limit that never started before the cutover,
https://github.com/kubev2v/forklift/pull/1086); a guest dirtying faster than its share of
the link "won't converge"; seeds on one pair share its bandwidth (two VMs take twice as
long as one).  What only real hosts would show: whether the measured rates match the
assumptions (the lab wave test compares the plan with a run).
"""

from __future__ import annotations

import math

import pytest

from vmigrate_lib.wave.model import Group, HostPair, Limits, VmFacts, VmTask, WavePlan, Window
from vmigrate_lib.wave.schedule import peak_in_flight, schedule

GB = 1e9


def _vm(name: str, src: str, dst: str, group: str = "g", seed: float = 10 * GB,
        dirty: float = 1e6) -> VmTask:
    return VmTask(name, group, src, dst, name, 600.0,
                  VmFacts(seed_bytes=int(seed), dirty_rate=dirty, shutdown_s=30, boot_s=60))


def _plan(vms: list[VmTask], groups: tuple[Group, ...] = (Group("g"),), **lim: object) -> WavePlan:
    return WavePlan("w", tuple(vms), groups, Limits(**{  # type: ignore[arg-type]
        "in_flight": 4, "per_source": 2, "per_destination": 2, "default_bandwidth": 1e8, **lim}))


def test_limits_hold_per_host_and_in_total() -> None:
    vms = [_vm(f"v{i}", f"s{i % 2}", f"d{i % 3}") for i in range(12)]
    sched = schedule(_plan(vms))
    assert all(s.verdict == "fits" for s in sched.slots)
    ivs = [(k, s.seed_start, s.end) for s in sched.slots
           for k in ("total", f"src:{s.vm.source}", f"dst:{s.vm.destination}")]
    peaks = peak_in_flight(ivs)
    assert peaks["total"] == 4
    assert max(v for k, v in peaks.items() if k != "total") == 2


def test_dependencies_and_windows() -> None:
    groups = (Group("db", (), Window(0, 7200)), Group("app", ("db",), Window(1800, 7200)))
    vms = [_vm("db1", "a", "b", "db"), _vm("app1", "c", "d", "app"), _vm("app2", "a", "d", "app")]
    s = {x.vm.name: x for x in schedule(_plan(vms, groups)).slots}
    assert all(x.verdict == "fits" for x in s.values())
    assert s["app1"].seed_start == 0.0  # seeds run ahead of the order...
    assert s["app1"].cut_start >= s["db1"].cut_end  # ...cutovers follow it
    assert s["app1"].cut_start >= 1800  # and wait for the window


def test_a_seed_ending_after_its_window_misses_it() -> None:
    # 100 GB at 50 MB/s (2 per pair) takes ~2000 s; the window ends at 600 s
    groups = (Group("g", (), Window(0, 600)),)
    s = schedule(_plan([_vm("big", "a", "b", seed=100 * GB)], groups)).slots[0]
    assert s.verdict == "misses window" and "window 0-600 s" in s.why
    assert math.isnan(s.cut_start)


def test_a_guest_dirtying_faster_than_its_share_will_not_converge() -> None:
    s = schedule(_plan([_vm("hot", "a", "b", dirty=60e6)])).slots[0]  # share 50 MB/s
    assert s.verdict == "won't converge"
    assert "60.0 MB/s" in s.why and "a->b" in s.why


def test_seeds_on_one_pair_share_its_bandwidth() -> None:
    one = schedule(_plan([_vm("x", "a", "b")])).slots[0]
    two = schedule(_plan([_vm("x", "a", "b"), _vm("y", "a", "b")])).slots
    assert one.seed_end == pytest.approx(10 * GB / 1e8, rel=0.01)  # alone: the whole pair
    assert two[0].seed_end == pytest.approx(2 * one.seed_end, rel=0.01)


def test_a_pair_of_its_own_bandwidth() -> None:
    vms = [_vm("x", "a", "b")]
    plan = _plan(vms, bandwidth=((HostPair("a", "b"), 1e9),))
    assert schedule(plan).slots[0].seed_end == pytest.approx(10.0, rel=0.01)


def test_a_vm_no_slot_frees_for_is_named() -> None:
    groups = (Group("g", (), Window(0, 100)),)
    vms = [_vm("a1", "a", "b", seed=1e12), _vm("a2", "a", "b", seed=1e12),
           _vm("a3", "a", "b", seed=1e6)]
    verdicts = {s.vm.name: s.verdict for s in schedule(_plan(vms, groups)).slots}
    assert verdicts["a1"] == "misses window"
    slots = {s.vm.name: s for s in schedule(_plan(vms, groups)).slots}
    assert slots["a3"].verdict == "misses window" and "before the limits left it a slot" in \
        slots["a3"].why
