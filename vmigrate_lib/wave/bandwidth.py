"""A VM's share of its host pair's bandwidth, handed to the data plane as ``bwlimit``.

The wave file's ``limits.bandwidth`` is a host pair's share of the link; each VM in flight
on that pair gets an equal split of it as its hosts' ``bwlimit`` (the SSH data plane's
cap: the relay's :class:`~vmigrate_lib.dataplane.ssh.channel.RateLimiter`, the agent's
throttle in direct mode).  A cap the VM's own params already set lower is kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .fields import parse_rate


def with_cap(raw: Mapping[str, Any], cap: int) -> dict[str, Any]:
    """``raw`` params with ``bwlimit`` at most ``cap`` on the source and destination."""
    out = dict(raw)
    for side in ("source", "destination"):
        host = dict(out.get(side) or {})
        if not 0 < _rate(host.get("bwlimit")) < cap:
            host["bwlimit"] = cap
        out[side] = host
    return out


def _rate(value: Any) -> float:
    """A ``bwlimit`` as given (bytes/s, "50MB", "50MB/s"); 0 for none or unreadable (the
    params check refuses an unreadable one anyway)."""
    if value in (None, "", 0) or isinstance(value, bool):
        return 0.0
    try:
        return float(value) if isinstance(value, (int, float)) else parse_rate(str(value))
    except ValueError:
        return 0.0


def write_params(path: Path, raw: Mapping[str, Any]) -> None:
    """A VM's params file (private: it names secrets' references)."""
    data = yaml.safe_dump(dict(raw), sort_keys=False).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
