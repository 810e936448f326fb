"""Link shaping of the namespace peers: ``tc`` on both ends of one host's veth link.

Each direction is shaped on its sender's side: egress of the namespace's ``eth0`` (host
upload) and egress of the root-side veth (host download).  ``netem delay D rate R`` where
the kernel has sch_netem, else ``tbf rate R`` (the delay cannot be applied then, and
``Link.delay_applied`` says so).  :class:`tests.peers.netns.Topology` builds the links and
calls :func:`shape`; ``from tests.peers.netns import Link`` keeps working.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from tests.peers.netns_probe import IP, TC, netem_supported, parse_rate, run_cmd

__all__ = ["Link", "qdiscs", "shape"]

_warned_no_netem = False  #: say once per run that links get no delay (no netem)


@dataclass
class Link:
    """One host's namespace and its veth link to the bridge."""

    role: str
    netns: str
    ip: str
    root_if: str
    ns_if: str = "eth0"
    rate: str | None = None
    delay: str | None = None
    delay_applied: bool = False


def shape(link: Link, rate: str | None = None, delay: str | None = None) -> Link:
    """(Re)shape both directions of ``link``.  None/None removes shaping.

    ``delay`` is one-way per direction (so RTT root<->host ~ 2*delay).  Without
    sch_netem in the kernel only the rate is applied (warning, delay_applied=False).
    """
    link.rate, link.delay = rate, delay
    link.delay_applied = False
    use_netem = delay is not None and netem_supported()
    global _warned_no_netem
    if delay is not None and not use_netem and not _warned_no_netem:
        _warned_no_netem = True
        warnings.warn(
            f"kernel has no sch_netem: delay {delay} not applied to link {link.role}",
            stacklevel=3,
        )
    for prefix, dev in (([], link.root_if), ([IP, "netns", "exec", link.netns], "eth0")):
        run_cmd([*prefix, TC, "qdisc", "del", "dev", dev, "root"], check=False)
        if rate is None and not use_netem:
            continue
        run_cmd([*prefix, TC, "qdisc", "add", "dev", dev, "root", *_qdisc_args(rate, delay,
                                                                             use_netem)])
    link.delay_applied = use_netem
    return link


def _qdisc_args(rate: str | None, delay: str | None, use_netem: bool) -> list[str]:
    """The root qdisc for one direction: netem (delay, optional rate) or tbf (rate only)."""
    if use_netem:
        args = ["netem", "delay", str(delay)]
        if rate is not None:
            args += ["rate", str(rate)]
        return [*args, "limit", "10000"]
    assert rate is not None
    bps = parse_rate(rate) // 8
    burst = max(32 * 1024, bps // 500)  # >= 2 ms worth, >= 32 KiB
    return ["tbf", "rate", str(rate), "burst", str(burst), "latency", "50ms"]


def qdiscs(link: Link) -> str:
    """``tc qdisc show`` of both ends of ``link`` (root side first)."""
    out = run_cmd([TC, "qdisc", "show", "dev", link.root_if]).stdout
    out += run_cmd([IP, "netns", "exec", link.netns, TC, "qdisc", "show", "dev", "eth0"]).stdout
    return out
