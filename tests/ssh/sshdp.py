"""Helpers for the SSH data-plane tests: settings for a peer, disks, fault injection."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from sshd import SshHost

from vmigrate_lib.dataplane.sshconfig import SshSettings

MiB = 1 << 20


def settings_for(h: SshHost, **kw: Any) -> SshSettings:
    """SshSettings reaching ``h`` with its test key and known_hosts, no ssh-agent."""
    base: dict[str, Any] = dict(
        host=h.ip, port=h.port, user=h.user, key_filename=h.key_path,
        known_hosts=h.known_hosts_path, allow_agent=False, connect_timeout=10,
        io_timeout=20, backoff=0.2,
    )
    base.update(kw)
    return SshSettings(**base)


def make_disk(path: Path, size: int, seed: int = 1) -> bytes:
    """A sparse disk: random data, an explicit zero run, and holes."""
    rnd = __import__("random").Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        pos = 0
        while pos < size:
            n = min(rnd.choice([256 * 1024, MiB, 3 * MiB]), size - pos)
            kind = rnd.random()
            if kind < 0.6:
                f.seek(pos)
                f.write(rnd.randbytes(n))
            elif kind < 0.75:
                f.seek(pos)
                f.write(bytes(n))
            pos += n + rnd.choice([0, 0, 512 * 1024])
    return path.read_bytes()


def garbage(path: Path, size: int) -> None:
    """Destination pre-filled with 0xEE, so that any region not written shows."""
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(b"\xee" * MiB)


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def kill_session(agent_pid: int) -> int:
    """Kill the sshd session process serving an agent: the TCP connection drops."""
    ppid = parent_pid(agent_pid)
    cmd = Path(f"/proc/{ppid}/cmdline").read_bytes()
    assert b"sshd" in cmd, cmd
    os.kill(ppid, signal.SIGKILL)
    return ppid
