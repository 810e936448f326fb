"""How a wave's limits become Airflow pools and lanes.

An Airflow pool counts running task instances only: a VM between its tasks (sync ->
warm -> cutover) holds no slot, and the scheduler gives the freed slot to the next
queued sync (Airflow's docs: pools "limit the execution parallelism on arbitrary sets of
tasks ... As slots free up, queued tasks start running based on the Priority Weights",
https://airflow.apache.org/docs/apache-airflow/stable/administration-and-deployment/pools.html;
nothing there holds a slot across tasks).  A CI-path run under load had 6 VMs in flight against a limit
of 4 that way.  So the DAG also carries *lanes*: a host pair with ``n`` slots has ``n``
lanes, each a chain of its VMs in which a sync starts only once the previous VM's
cutover is over (success, failure, skip: ``all_done``).  At most ``n`` VMs of a pair are
then in flight whatever the scheduler does, and the pair slots add up within every
limit (:func:`pair_slots`).  The price against the local runner, which counts slots as
they free: a lane does not lend its turn to another lane's VM.
"""

from __future__ import annotations

from collections import Counter

from ..errors import WaveFileError
from .model import HostPair, Limits, VmTask, WavePlan


def pair_slots(plan: WavePlan) -> dict[HostPair, int]:
    """Slots per host pair: one each, then more to the pair with the most VMs per slot
    while every limit still holds; raise when even one slot per pair breaks a limit."""
    lim: Limits = plan.limits
    vms = Counter(v.pair for v in plan.vms)
    slots = dict.fromkeys(sorted(vms, key=str), 1)

    def fits(s: dict[HostPair, int]) -> bool:
        src, dst = Counter[str](), Counter[str]()
        for p, n in s.items():
            src[p.source] += n
            dst[p.destination] += n
        return (sum(s.values()) <= lim.in_flight and max(src.values()) <= lim.per_source
                and max(dst.values()) <= lim.per_destination)

    if not fits(slots):
        raise WaveFileError(
            f"the limits leave no slot for each of the {len(slots)} host pairs "
            f"(in_flight {lim.in_flight}, per source host {lim.per_source}, per destination "
            f"host {lim.per_destination}); an Airflow task takes one pool, one per pair",
            hint="raise the limits or split the wave so fewer pairs share a host")
    while True:
        room = [p for p in slots if slots[p] < vms[p] and fits({**slots, p: slots[p] + 1})]
        if not room:
            return slots
        best = max(room, key=lambda p: (vms[p] / slots[p], str(p)))
        slots[best] += 1


def lane_order(plan: WavePlan) -> list[VmTask]:
    """The VMs in the order lanes take them: by group rank (a group's VMs never wait in a
    lane behind a VM that waits for them: no deadlock), then window opening, then file
    order (the order ``wave run`` starts them)."""
    rank = plan.group_order()
    pos = {v.name: i for i, v in enumerate(plan.vms)}
    return sorted(plan.vms, key=lambda v: (rank[v.group], plan.group(v.group).window.start,
                                           pos[v.name]))


def lanes(plan: WavePlan, slots: dict[HostPair, int]) -> dict[str, str | None]:
    """Each VM's predecessor in its pair's lane (``None``: first in its lane).  A pair's
    k-th VM (in :func:`lane_order`) follows its (k - slots)-th: the first ``slots`` start at
    once, and each later one waits for one VM's cutover to be over."""
    seen: dict[HostPair, list[str]] = {}
    before: dict[str, str | None] = {}
    for v in lane_order(plan):
        taken = seen.setdefault(v.pair, [])
        n = slots[v.pair]
        before[v.name] = taken[-n] if len(taken) >= n else None
        taken.append(v.name)
    return before
