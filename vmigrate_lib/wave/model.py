"""A wave as plain data: VM tasks, groups, dependencies, windows and limits.

No scheduler and no I/O here, so that every runner reads the same model: the
embedded one (:mod:`.runner`), the paper planner (:mod:`.schedule`) and a DAG
writer (Airflow: a VM is a sync task then a cutover task, a group's ``after`` is a
dependency between task groups, a window a sensor, each limit a pool).  Times are
seconds from the wave's start; rates bytes per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Window:
    """When a group's cutovers may run: [start, end) seconds from the wave's start."""

    start: float = 0.0
    end: float = math.inf

    def fits(self, begin: float, finish: float) -> bool:
        return begin >= self.start and finish <= self.end


@dataclass(frozen=True)
class Group:
    """VMs cut over together; ``after`` names groups whose cutovers must all be over first
    (database before application, as HCX mobility groups and Veeam failover plans order them)."""

    name: str
    after: tuple[str, ...] = ()
    window: Window = Window()


@dataclass(frozen=True)
class HostPair:
    source: str
    destination: str

    def __str__(self) -> str:
        return f"{self.source}->{self.destination}"


@dataclass(frozen=True)
class Limits:
    """How much may run at once (Forklift's ``MAX_VM_INFLIGHT``, and per host).

    A VM is in flight from its seed's start to its cutover's end (warm VMs hold their
    slot: a slot freed by a warm VM would let a later one start a seed it cannot finish
    before its own window).  ``bandwidth`` is each host pair's share of the data plane,
    bytes/s, divided among that pair's copies; ``default_bandwidth`` for pairs not named.
    """

    in_flight: int = 4
    per_source: int = 2
    per_destination: int = 2
    default_bandwidth: float = 125e6
    bandwidth: tuple[tuple[HostPair, float], ...] = ()
    #: the wave file named shares: each VM's data plane gets its cap (``bwlimit``)
    enforce_bandwidth: bool = False

    def cap(self, pair: HostPair, copies: int) -> int:
        """A VM's bandwidth cap, bytes/s: its pair's share split equally among the
        ``copies`` in flight on that pair (itself included)."""
        return max(1, int(self.bandwidth_of(pair) / max(1, copies)))

    def bandwidth_of(self, pair: HostPair) -> float:
        for p, bw in self.bandwidth:
            if p == pair:
                return bw
        return self.default_bandwidth


@dataclass(frozen=True)
class VmFacts:
    """What the estimate needs of one VM: from preflight and its workspace's journal,
    else from the wave file (a plan on paper)."""

    capacity: int = 0  #: bytes of all disks
    seed_bytes: int = 0  #: what the seed still has to copy (allocated, not yet at the destination)
    dirty_rate: float = 0.0  #: bytes/s the steady delta grows by
    dirty_source: str = "assumed"  #: measured | file | assumed
    throughput: float = 0.0  #: measured copy rate, bytes/s; 0: the link's share
    shutdown_s: float = 30.0
    boot_s: float = 60.0
    seeded: bool = False


@dataclass(frozen=True)
class VmTask:
    """One VM of the wave: where it goes, in which group, and its facts."""

    name: str
    group: str
    source: str
    destination: str
    dest_name: str
    budget: float  #: downtime budget, seconds
    facts: VmFacts = VmFacts()

    @property
    def pair(self) -> HostPair:
        return HostPair(self.source, self.destination)


@dataclass(frozen=True)
class WavePlan:
    """The whole wave: what a runner or a DAG writer needs, nothing it decides."""

    name: str
    vms: tuple[VmTask, ...]
    groups: tuple[Group, ...]
    limits: Limits
    interval: float = 60.0  #: seconds between warm delta cycles
    cycle_overhead: float = 5.0  #: seconds a delta cycle costs whatever it copies
    #: seconds each runbook run costs beyond its copy (kernel, preflight, audit, archive)
    runbook_overhead: float = 60.0
    start_at: float | None = None  #: epoch of the wave's start (absolute windows), if known
    notes: tuple[str, ...] = field(default=())

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def depends_on(self, vm: VmTask) -> tuple[VmTask, ...]:
        """The VMs whose cutovers must be over before ``vm``'s starts."""
        before = set(self.group(vm.group).after)
        return tuple(v for v in self.vms if v.group in before)

    def group_order(self) -> dict[str, int]:
        """Each group's rank in a topological order (the file checked there is no cycle)."""
        rank: dict[str, int] = {}
        pending = list(self.groups)
        while pending:
            for g in list(pending):
                if all(a in rank for a in g.after):
                    rank[g.name] = max((rank[a] + 1 for a in g.after), default=0)
                    pending.remove(g)
                    break
            else:  # a cycle: refused by the spec; rank what is left last
                for g in pending:
                    rank[g.name] = len(self.groups)
                break
        return rank
