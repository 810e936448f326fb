"""A VM's bandwidth cap from its pair's share (no lab needed).

What it proves: the share is split equally among the VMs in flight on the pair; the cap
goes on both hosts' ``bwlimit``; a lower cap the VM's params already give (a number or a
rate string) is kept, a higher one is lowered.  What only a real link would show: that
the data plane's throttle holds the rate (the SSH data plane's own tests cover that).
"""

from __future__ import annotations

from typing import Any

from vmigrate_lib.wave.bandwidth import with_cap
from vmigrate_lib.wave.model import HostPair, Limits


def test_share_split_among_vms_in_flight() -> None:
    lim = Limits(bandwidth=((HostPair("a", "b"), 100e6),), default_bandwidth=10e6,
                 enforce_bandwidth=True)
    assert lim.cap(HostPair("a", "b"), 1) == 100_000_000
    assert lim.cap(HostPair("a", "b"), 4) == 25_000_000
    assert lim.cap(HostPair("c", "d"), 2) == 5_000_000  # the default share


def test_cap_on_both_hosts_lower_own_cap_kept() -> None:
    raw: dict[str, Any] = {"source": {"type": "lab", "bwlimit": "1MB/s"},
                           "destination": {"type": "lab", "bwlimit": 10**9}}
    out = with_cap(raw, 5_000_000)
    assert out["source"]["bwlimit"] == "1MB/s"  # already lower: kept
    assert out["destination"]["bwlimit"] == 5_000_000  # higher: lowered
    assert with_cap({"source": {}}, 7)["destination"] == {"bwlimit": 7}
    assert raw["destination"]["bwlimit"] == 10**9  # the spec's own mapping untouched
