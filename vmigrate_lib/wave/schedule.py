"""A pure schedule of a wave: when each seed runs, when each VM is ready, when it cuts over.

An event simulation over :class:`~.model.WavePlan`: VMs start in group order (then by
window, then file order) whenever the limits leave a slot (in flight in total, per
source host, per destination host; a VM holds its slot from its seed's start to its
cutover's end); the seeds on one host pair share its bandwidth equally, less what the
warm VMs' delta cycles take; a warm VM cuts over once its window is open and every VM of
the groups it comes after is over.  Each VM gets a verdict: fits its window, misses it
(and why: its seed or its predecessors ran late), or will not converge on its link.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .estimate import Estimate, estimate
from .model import HostPair, VmTask, WavePlan

_EPS = 1e-6


@dataclass
class Slot:
    """One VM's schedule (seconds from the wave's start; nan: did not happen)."""

    vm: VmTask
    est: Estimate
    seed_start: float = math.nan
    seed_end: float = math.nan
    ready: float = math.nan
    cut_start: float = math.nan
    cut_end: float = math.nan
    verdict: str = "waiting"  #: fits | misses window | won't converge | over budget | not started
    why: str = ""
    _left: float = 0.0

    @property
    def end(self) -> float:
        """When the VM frees its slot."""
        return self.cut_end if not math.isnan(self.cut_end) else (
            self.ready if not math.isnan(self.ready) else self.seed_end)


@dataclass(frozen=True)
class Schedule:
    plan: WavePlan
    slots: tuple[Slot, ...]

    @property
    def makespan(self) -> float:
        ends = [s.end for s in self.slots if not math.isnan(s.end)]
        return max(ends, default=0.0)

    def by_pair(self) -> dict[HostPair, list[Slot]]:
        out: dict[HostPair, list[Slot]] = defaultdict(list)
        for s in self.slots:
            out[s.vm.pair].append(s)
        return dict(out)


def peak_in_flight(intervals: Iterable[tuple[str, float, float]]) -> dict[str, int]:
    """Most intervals open at once per key, from ``(key, start, end)``; an interval that
    ends when another starts does not overlap it."""
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for key, start, end in intervals:
        events[key] += [(start, 1), (end, -1)]
    peaks: dict[str, int] = {}
    for key, evs in events.items():
        now = peak = 0
        for _, d in sorted(evs, key=lambda e: (e[0], e[1])):
            now += d
            peak = max(peak, now)
        peaks[key] = peak
    return peaks


class _Sim:
    def __init__(self, plan: WavePlan) -> None:
        self.plan = plan
        rank = plan.group_order()
        order = sorted(enumerate(plan.vms), key=lambda iv: (
            rank[iv[1].group], plan.group(iv[1].group).window.start, iv[0]))
        self.slots = [Slot(v, estimate(plan, v)) for _, v in order]
        for s in self.slots:
            s._left = 0.0 if s.vm.facts.seeded else float(s.vm.facts.seed_bytes)
        self.t = 0.0
        self.win = {g.name: g.window for g in plan.groups}
        self.after = {g.name: set(g.after) for g in plan.groups}
        self.open: dict[str, int] = defaultdict(int)  #: per group: VMs not over yet
        for s in self.slots:
            self.open[s.vm.group] += 1
        self.act: list[Slot] = []

    def active(self) -> list[Slot]:
        self.act = [s for s in self.act if s.verdict in ("seeding", "warm", "cutting")]
        return list(self.act)

    def over(self, s: Slot, verdict: str, why: str = "") -> None:
        s.verdict, s.why = verdict, why
        self.open[s.vm.group] -= 1

    def start_new(self) -> None:
        lim = self.plan.limits
        act = self.active()
        if len(act) >= lim.in_flight:
            return
        for s in self.slots:
            if s.verdict != "waiting":
                continue
            if self.t >= self.win[s.vm.group].end:
                self.over(s, "misses window", f"its window closed at {self.t:.0f} s before "
                          "the limits left it a slot")
                continue
            if (len(act) < lim.in_flight
                    and sum(a.vm.source == s.vm.source for a in act) < lim.per_source
                    and sum(a.vm.destination == s.vm.destination for a in act)
                    < lim.per_destination):
                s.seed_start, s.verdict = self.t, "seeding"
                act.append(s)
                self.act.append(s)

    def rates(self) -> dict[int, float]:
        """Each seeding VM's rate: its pair's bandwidth less the warm cycles', shared."""
        out: dict[int, float] = {}
        pairs: dict[HostPair, list[Slot]] = defaultdict(list)
        for s in self.active():
            pairs[s.vm.pair].append(s)
        for pair, on in pairs.items():
            seeding = [s for s in on if s.verdict == "seeding"]
            warm = sum(s.vm.facts.dirty_rate for s in on if s.verdict != "seeding")
            bw = self.plan.limits.bandwidth_of(pair)
            free = max(bw - warm, 0.05 * bw)
            for s in seeding:
                rate = free / len(seeding)
                out[id(s)] = min(rate, s.vm.facts.throughput) if s.vm.facts.throughput else rate
        return out

    def deps_over(self, s: Slot) -> bool:
        return all(self.open[g] == 0 for g in self.after[s.vm.group])

    def step(self) -> bool:
        """Advance to the next event; False when nothing more can happen."""
        self.start_new()
        changed = self.settle()
        rates = self.rates()
        nxt = [self.t + s._left / rates[id(s)] for s in self.active()
               if s.verdict == "seeding" and rates.get(id(s), 0) > 0]
        for s in self.active():
            w = self.win[s.vm.group]
            if s.verdict == "warm":
                nxt += [t for t in (s.ready, w.start, w.end) if t > self.t + _EPS]
            elif s.verdict == "cutting":
                nxt.append(s.cut_end)
        future = [t for t in nxt if t > self.t + _EPS and math.isfinite(t)]
        if not future:
            return changed
        t = min(future)
        for s in self.active():
            if s.verdict == "seeding" and id(s) in rates:
                s._left = max(0.0, s._left - rates[id(s)] * (t - self.t))
        self.t = t
        return True

    def settle(self) -> bool:
        """Apply what happens at ``t``: seeds done, cutovers over, cutovers starting."""
        changed = False
        for s in self.active():
            w = self.win[s.vm.group]
            if s.verdict == "seeding" and s._left <= _EPS * max(1.0, s.vm.facts.seed_bytes):
                s.seed_end, s.verdict = self.t, "warm"
                s.ready = self.t + s.est.cycle_s + self.plan.runbook_overhead
                changed = True
                if not s.est.converges:
                    self.over(s, "won't converge", s.est.why)
            elif s.verdict == "cutting" and s.cut_end <= self.t + _EPS:
                self.over(s, "fits" if not s.est.why else "over budget", s.est.why)
                changed = True
            elif s.verdict == "warm" and self.t + s.est.cutover_s > w.end + _EPS:
                changed = True
                self.over(s, "misses window", f"ready at {s.ready:.0f} s, window {w.start:.0f}-{w.end:.0f} s"
                         + ("" if self.deps_over(s) else "; its predecessors were not over"))
            elif (s.verdict == "warm" and self.t + _EPS >= max(s.ready, w.start)
                  and self.deps_over(s)):
                s.cut_start, s.cut_end = self.t, self.t + s.est.cutover_s
                s.verdict, changed = "cutting", True
        return changed


def schedule(plan: WavePlan, max_events: int = 1_000_000) -> Schedule:
    """Simulate the wave (pure: plan in, schedule out)."""
    sim = _Sim(plan)
    for _ in range(max_events):
        if not sim.step() and not sim.settle():
            break
    for s in sim.slots:
        if s.verdict == "waiting":
            s.verdict, s.why = "not started", "no slot ever freed for it (limits)"
        elif s.verdict in ("seeding", "warm"):
            s.verdict, s.why = "misses window", f"still {s.verdict} when the plan ended"
    return Schedule(plan, tuple(sim.slots))
