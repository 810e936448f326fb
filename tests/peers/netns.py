"""Network-namespace topology for real SSH peers in tests.

Builds, in the root namespace, one Linux bridge with an address in a private
/24 (10.213.N.0/24, N chosen so that it overlaps no existing address or route),
and for each host role ("a", "b", optionally "c") a network namespace
``vmg-<pid>-<k>-<role>`` joined to the bridge by a veth pair.  The namespaces get
no default route: traffic can only go to the bridge's /24, never elsewhere.

Addresses (N chosen per run)::

    root namespace (bridge)   10.213.N.1/24
    host a                    10.213.N.11/24
    host b                    10.213.N.12/24
    host c                    10.213.N.13/24

Each host's link is shaped in both directions (egress of the namespace's
``eth0`` = host upload, egress of the root-side veth = host download) with
``tc``: ``netem delay D rate R`` where the kernel has netem, else ``tbf rate R``
(delay then cannot be applied and ``Link.delay_applied`` is False); the shaping
itself is tests/peers/shaping.py.

Cleanup: ``Topology`` is a context manager and also registered with atexit;
``cleanup_stale()`` (called on every ``create()``) removes namespaces, links and
processes left by runs whose pid no longer exists.  By hand::

    python -m tests.peers.netns up            # build a,b and wait (Ctrl-C cleans)
    python -m tests.peers.netns list
    python -m tests.peers.netns cleanup       # stale (dead-pid) leftovers only
    python -m tests.peers.netns cleanup --all # every vmg-* namespace and vg* link

Only the root user can do this; ``available()`` says why not otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from tests.peers import shaping
from tests.peers.netns_probe import (
    IP,
    NetnsError,
    available,
    netem_supported,
    parse_rate,
    run_cmd,
)
from tests.peers.shaping import Link

# Link/available/netem_supported/parse_rate/NetnsError are re-exported: callers need one module.
__all__ = ["HOST_OCTETS", "SUBNET_BASE", "Link", "NetnsError", "Topology", "available",
           "cleanup_stale", "list_resources", "netem_supported", "parse_rate"]

#: 10.213.N.0/24 for N in this range.
SUBNET_BASE = "10.213"
HOST_OCTETS = {"a": 11, "b": 12, "c": 13, "d": 14}
LOCK_PATH = "/run/vmigrate-netns.lock"

_NS_RE = re.compile(r"^vmg-(?P<pid>\d+)-(?P<k>\d+)-(?P<role>[a-z]+)$")
_LINK_RE = re.compile(r"^vg(?P<pid>\d+)k(?P<k>\d+)(?P<role>[a-z]+)$")

_counter = itertools.count()
_live: set[Topology] = set()
_live_lock = threading.Lock()


# --------------------------------------------------------------------------- helpers


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _global_lock() -> Iterator[None]:
    """Serialise subnet choice + creation across processes (e.g. pytest-xdist workers)."""
    with open(LOCK_PATH, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    p = run_cmd([IP, "-4", "-j", "addr", "show"], check=False)
    if p.returncode == 0 and p.stdout.strip():
        for link in json.loads(p.stdout):
            for a in link.get("addr_info", []):
                nets.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    p = run_cmd([IP, "-4", "-j", "route", "show", "table", "all"], check=False)
    if p.returncode == 0 and p.stdout.strip():
        for r in json.loads(p.stdout):
            dst = r.get("dst", "")
            if dst in ("", "default"):
                continue
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


def _pick_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    start = os.getpid() % 250 + 1
    for i in range(250):
        n = (start + i - 1) % 250 + 1
        cand = ipaddress.IPv4Network(f"{SUBNET_BASE}.{n}.0/24")
        # 0.0.0.0/0-ish routes were skipped; anything else overlapping is a clash.
        if not any(u.version == 4 and cand.overlaps(u) for u in used if u.prefixlen > 0):
            return cand
    raise NetnsError(f"no free /24 in {SUBNET_BASE}.0.0/16")


# --------------------------------------------------------------------------- cleanup


def _netns_list() -> list[str]:
    p = run_cmd([IP, "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _kill_netns_pids(ns: str, timeout: float = 3.0) -> None:
    def pids() -> list[int]:
        p = run_cmd([IP, "netns", "pids", ns], check=False)
        return [int(x) for x in p.stdout.split() if x.isdigit()]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = pids()
        if not live:
            return
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pids():
            time.sleep(0.05)


def _delete_netns(ns: str) -> None:
    _kill_netns_pids(ns)
    run_cmd([IP, "netns", "del", ns], check=False)


def _root_links() -> list[str]:
    p = run_cmd([IP, "-j", "link", "show"], check=False)
    if p.returncode != 0 or not p.stdout.strip():
        return []
    return [link["ifname"] for link in json.loads(p.stdout)]


def cleanup_stale(all_runs: bool = False) -> list[str]:
    """Remove vmg-* namespaces / vg* links whose creating pid is gone (or all of them).

    Returns what was removed.  Processes still inside such namespaces (sshd) are
    killed first, otherwise the namespace would outlive ``ip netns del``.
    """
    removed: list[str] = []
    for ns in _netns_list():
        m = _NS_RE.match(ns)
        if m and (all_runs or not _pid_alive(int(m["pid"]))):
            _delete_netns(ns)
            removed.append(f"netns {ns}")
    for ifname in _root_links():
        m = _LINK_RE.match(ifname.split("@")[0])
        if m and (all_runs or not _pid_alive(int(m["pid"]))):
            run_cmd([IP, "link", "del", ifname.split("@")[0]], check=False)
            removed.append(f"link {ifname}")
    return removed


def _atexit() -> None:
    with _live_lock:
        live = list(_live)
    for t in live:
        with contextlib.suppress(Exception):
            t.close()


atexit.register(_atexit)


# --------------------------------------------------------------------------- topology


@dataclass(eq=False)
class Topology:
    """Bridge in the root namespace + one namespace per role, shaped links.

    >>> with Topology(("a", "b"), rate="1gbit", delay="1ms") as topo:
    ...     topo.ip("a"), topo.netns("a")
    """

    roles: Sequence[str] = ("a", "b")
    rate: str | None = "1gbit"
    delay: str | None = "1ms"
    subnet: str | None = None  # e.g. "10.213.7.0/24"; chosen automatically if None
    run_id: str = ""
    bridge: str = ""
    root_ip: str = ""
    links: dict[str, Link] = field(default_factory=dict)
    _created: bool = False

    def __post_init__(self) -> None:
        for r in self.roles:
            if r not in HOST_OCTETS:
                raise ValueError(f"role {r!r} not one of {sorted(HOST_OCTETS)}")
        k = next(_counter)
        pid = os.getpid()
        self.run_id = self.run_id or f"{pid}-{k}"
        pid_s, k_s = self.run_id.split("-")
        self.bridge = f"vg{pid_s}k{k_s}br"
        if len(self.bridge) > 15:
            raise NetnsError(f"interface name too long: {self.bridge}")

    # -- lifecycle
    def __enter__(self) -> Self:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self) -> Topology:
        ok, why = available()
        if not ok:
            raise NetnsError(why)
        cleanup_stale()
        pid_s, k_s = self.run_id.split("-")
        with _live_lock:
            _live.add(self)
        try:
            with _global_lock():
                net = ipaddress.ip_network(self.subnet) if self.subnet else _pick_subnet()
                self.subnet = str(net)
                hosts = list(net.hosts())
                self.root_ip = str(hosts[0])
                run_cmd([IP, "link", "add", self.bridge, "type", "bridge"])
                self._created = True
                run_cmd([IP, "addr", "add", f"{self.root_ip}/{net.prefixlen}", "dev", self.bridge])
                run_cmd([IP, "link", "set", self.bridge, "up"])
            for role in self.roles:
                ns = f"vmg-{pid_s}-{k_s}-{role}"
                root_if = f"vg{pid_s}k{k_s}{role}"
                ip = str(net.network_address + HOST_OCTETS[role])
                link = Link(role=role, netns=ns, ip=ip, root_if=root_if)
                self.links[role] = link
                run_cmd([IP, "netns", "add", ns])
                tmp_peer = f"vg{pid_s}k{k_s}{role}p"
                run_cmd([IP, "link", "add", root_if, "type", "veth", "peer", "name", tmp_peer])
                run_cmd([IP, "link", "set", tmp_peer, "netns", ns])
                run_cmd([IP, "-n", ns, "link", "set", tmp_peer, "name", "eth0"])
                run_cmd([IP, "link", "set", root_if, "master", self.bridge])
                run_cmd([IP, "link", "set", root_if, "up"])
                run_cmd([IP, "-n", ns, "link", "set", "lo", "up"])
                run_cmd([IP, "-n", ns, "addr", "add", f"{ip}/{net.prefixlen}", "dev", "eth0"])
                run_cmd([IP, "-n", ns, "link", "set", "eth0", "up"])
                self.shape(role, self.rate, self.delay)
            self._wait_reachable()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_reachable(self, timeout: float = 5.0) -> None:
        # The bridge forwards once its ports leave "learning"; with STP off (the
        # default) that's immediate, but poll an ARP-level ping anyway.
        deadline = time.monotonic() + timeout
        for link in self.links.values():
            while True:
                p = (
                    run_cmd(
                        [IP, "netns", "exec", link.netns, "ping", "-c1", "-W1", self.root_ip],
                        check=False,
                    )
                    if shutil.which("ping")
                    else None
                )
                if p is None or p.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise NetnsError(
                        f"{link.netns} cannot reach {self.root_ip}: {p.stdout}{p.stderr}"
                    )
                time.sleep(0.1)

    def close(self) -> None:
        for link in list(self.links.values()):
            _delete_netns(link.netns)  # also destroys both veth ends
            run_cmd([IP, "link", "del", link.root_if], check=False)
        if self._created:
            run_cmd([IP, "link", "del", self.bridge], check=False)
            self._created = False
        self.links.clear()
        with _live_lock:
            _live.discard(self)

    # -- queries
    def netns(self, role: str) -> str:
        return self.links[role].netns

    def ip(self, role: str) -> str:
        return self.links[role].ip

    def exec_argv(self, role: str, argv: Sequence[str]) -> list[str]:
        """argv prefixed with ``ip netns exec <ns>`` (same filesystem, other network)."""
        return [IP, "netns", "exec", self.netns(role), *argv]

    def run(self, role: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        check = kw.pop("check", False)
        return subprocess.run(self.exec_argv(role, argv), check=check, **kw)

    def qdiscs(self, role: str) -> str:
        return shaping.qdiscs(self.links[role])

    # -- shaping
    def shape(self, role: str, rate: str | None = None, delay: str | None = None) -> Link:
        """(Re)shape both directions of ``role``'s link (tests/peers/shaping.py).  None/None
        removes shaping; ``delay`` is one-way per direction."""
        return shaping.shape(self.links[role], rate, delay)

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "subnet": self.subnet,
            "bridge": self.bridge,
            "root_ip": self.root_ip,
            "hosts": {r: vars(link) for r, link in self.links.items()},
        }


def list_resources() -> list[str]:
    out = [f"netns {n}" for n in _netns_list() if _NS_RE.match(n)]
    out += [f"link {i}" for i in _root_links() if _LINK_RE.match(i.split("@")[0])]
    return out


def _main(argv: Iterable[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tests.peers.netns", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build a topology and wait until Ctrl-C")
    up.add_argument("--roles", default="a,b")
    up.add_argument("--rate", default="1gbit")
    up.add_argument("--delay", default="1ms")
    sub.add_parser("list", help="list vmg-* namespaces and vg* links")
    cl = sub.add_parser("cleanup", help="remove leftovers of dead runs")
    cl.add_argument("--all", action="store_true", help="also those of live pids")
    ns = ap.parse_args(list(argv))
    if ns.cmd == "list":
        print("\n".join(list_resources()) or "(none)")
        return 0
    if ns.cmd == "cleanup":
        print("\n".join(cleanup_stale(all_runs=ns.all)) or "(nothing to remove)")
        return 0
    ok, why = available()
    if not ok:
        print(why, file=sys.stderr)
        return 2
    with Topology(tuple(ns.roles.split(",")), rate=ns.rate or None, delay=ns.delay or None) as t:
        print(json.dumps(t.describe(), indent=2))
        print("Ctrl-C to tear down", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
