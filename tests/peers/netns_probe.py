"""Can this machine host the test network, and how to talk to iproute2.

Kept apart from netns.py (which builds and tears down topologies): the probe
(root, iproute2, veth, bridge, sshd, netem) decides whether namespace tests run
at all, and says why not in one sentence that pytest prints as the skip reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
SSHD = "/usr/sbin/sshd"


class NetnsError(RuntimeError):
    pass



def run_cmd(
    argv: Sequence[str], check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(argv), check=False, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise NetnsError(
            f"{' '.join(argv)} -> rc={p.returncode}: {p.stderr.strip() or p.stdout.strip()}"
        )
    return p


def parse_rate(rate: str | int) -> int:
    """'1gbit' / '100mbit' / '500kbit' / '12mbps' (bytes) / 1000000 -> bits per second."""
    if isinstance(rate, int):
        return rate
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)(bit|bps)?\s*", rate.lower())
    if not m:
        raise ValueError(f"bad rate {rate!r}")
    num = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2)]
    if m.group(3) == "bps":  # tc's "bps" means bytes per second
        num *= 8
    return int(num)


_available_cache: tuple[bool, str] | None = None


def available() -> tuple[bool, str]:
    """(True, "") if namespaces + veth + bridge + sshd can be used here, else (False, why)."""
    global _available_cache
    if _available_cache is not None:
        return _available_cache
    _available_cache = _probe()
    return _available_cache


def _probe() -> tuple[bool, str]:
    if sys.platform != "linux":
        return False, f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return False, f"network namespaces need root (euid is {os.geteuid()})"
    for tool in (IP, TC):
        if not os.path.exists(tool):
            return False, f"{tool} not found (install iproute2)"
    if not os.access(SSHD, os.X_OK):
        return False, f"{SSHD} not found (install openssh-server)"
    if not shutil.which("ssh-keygen"):
        return False, "ssh-keygen not found (install openssh-client)"
    probe = f"vmg-{os.getpid()}-999-probe"
    try:
        p = run_cmd([IP, "netns", "add", probe], check=False)
        if p.returncode != 0:
            return False, f"'ip netns add' failed: {p.stderr.strip()}"
        ifa, ifb = f"vg{os.getpid()}k999x", f"vg{os.getpid()}k999y"
        p = run_cmd([IP, "link", "add", ifa, "type", "veth", "peer", "name", ifb], check=False)
        if p.returncode != 0:
            return False, f"cannot create veth pairs: {p.stderr.strip()}"
        run_cmd([IP, "link", "del", ifa], check=False)
        br = f"vg{os.getpid()}k999z"
        p = run_cmd([IP, "link", "add", br, "type", "bridge"], check=False)
        if p.returncode != 0:
            return False, f"cannot create a bridge: {p.stderr.strip()}"
        run_cmd([IP, "link", "del", br], check=False)
    finally:
        run_cmd([IP, "netns", "del", probe], check=False)
    return True, ""


_netem_cache: bool | None = None


def netem_supported() -> bool:
    """Whether the kernel has sch_netem (needed to add delay; rate alone works via tbf)."""
    global _netem_cache
    if _netem_cache is None:
        ns = f"vmg-{os.getpid()}-998-netem"
        try:
            run_cmd([IP, "netns", "add", ns])
            p = run_cmd(
                [
                    IP,
                    "netns",
                    "exec",
                    ns,
                    TC,
                    "qdisc",
                    "add",
                    "dev",
                    "lo",
                    "root",
                    "netem",
                    "delay",
                    "1ms",
                ],
                check=False,
            )
            _netem_cache = p.returncode == 0
        except NetnsError:
            _netem_cache = False
        finally:
            run_cmd([IP, "netns", "del", ns], check=False)
    return _netem_cache
