"""An ESXi host made of a lab host, a network namespace, sshd and a busybox shell.

``esxi_peer`` serves lab host esx-a as an ESXi host (tests/peers/esxi_shell) in
namespace ``a`` of a one-host topology; root only (namespaces, the uid-0 login).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.labkit import Lab
from tests.peers import netns as peers_netns
from tests.peers.esxi_shell import EsxiPeer, serve_esxi
from vmigrate_lib.control.esxi import EsxiHost
from vmigrate_lib.params import EsxiHostParams

MiB = 1 << 20


@dataclass
class EsxiLab:
    lab: Lab
    peer: EsxiPeer

    def host(self) -> EsxiHost:
        return EsxiHost(EsxiHostParams(**self.peer.host_params()))  # type: ignore[arg-type]


@pytest.fixture
def esxi_lab(make_lab: Callable[..., Lab]) -> Iterator[EsxiLab]:
    ok, why = peers_netns.available()
    if not ok or os.geteuid() != 0:
        pytest.skip(why or "the ESXi peer needs root")
    lab = make_lab(disk_sizes=(8 * MiB,), rate_mb_s=0.5, power_on=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no sch_netem: links get no delay, fine here
        topo = peers_netns.Topology(("a",)).create()
    try:
        with serve_esxi(lab.root, "esx-a", ip=topo.ip("a"), netns=topo.netns("a")) as peer:
            yield EsxiLab(lab, peer)
    finally:
        topo.close()


@dataclass
class EsxiPair:
    """Lab hosts esx-a and esx-b, each served as an ESXi host in its own namespace."""

    lab: Lab
    a: EsxiPeer
    b: EsxiPeer

    def params(self, **sync: object) -> dict[str, object]:
        raw = self.lab.raw_params(sync={"checkpoint_bytes": "1MiB", **sync})
        raw["source"] = self.a.host_params()
        raw["destination"] = self.b.host_params(datastore="datastore1")
        return raw


@pytest.fixture
def esxi_pair(make_lab: Callable[..., Lab]) -> Iterator[EsxiPair]:
    ok, why = peers_netns.available()
    if not ok or os.geteuid() != 0:
        pytest.skip(why or "the ESXi peers need root")
    lab = make_lab(disk_sizes=(4 * MiB,), rate_mb_s=0.2, power_on=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        topo = peers_netns.Topology(("a", "b")).create()
    try:
        with serve_esxi(lab.root, "esx-a", ip=topo.ip("a"), netns=topo.netns("a")) as a, \
                serve_esxi(lab.root, "esx-b", ip=topo.ip("b"), netns=topo.netns("b")) as b:
            yield EsxiPair(lab, a, b)
    finally:
        topo.close()
