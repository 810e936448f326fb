"""Helpers for the SSH data-plane tests: the peers' handle (``SshHosts``), settings
for a peer, disks, fault injection."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tests.labkit import lab_host
from tests.peers.netns import Topology
from tests.peers.sshd import SshdServer, SshHost, SshKeyPair
from vmigrate_lib.dataplane import open_ssh_datastore
from vmigrate_lib.dataplane.ssh import SshAgentDatastore
from vmigrate_lib.dataplane.sshconfig import SshSettings

MiB = 1 << 20


@dataclass
class SshHosts:
    """Hosts a, b (each an sshd in its own namespace) on one shaped bridge.

    ``hosts["a"]`` / ``hosts.a``: SshHost as reached from the test process (root ns).
    ``hosts.peer("a", "b")``: SshHost for b as reached *from host a* (direct mode):
    peer key + a known_hosts listing every host; use it in commands run on a.
    """

    topology: Topology
    servers: dict[str, SshdServer]
    client_key: SshKeyPair
    peer_key: SshKeyPair
    known_hosts_path: str  # every host's key
    workdir: str
    _peer_hosts: dict[str, SshHost] = field(default_factory=dict)

    def __getitem__(self, role: str) -> SshHost:
        return self.servers[role].host

    @property
    def a(self) -> SshHost:
        return self["a"]

    @property
    def b(self) -> SshHost:
        return self["b"]

    @property
    def roles(self) -> list[str]:
        return list(self.servers)

    def peer(self, src: str, dst: str) -> SshHost:
        """How ``src`` reaches ``dst``: same address/port, peer key, shared known_hosts."""
        assert src in self.servers and dst in self.servers
        return replace(
            self[dst], key_path=self.peer_key.path, known_hosts_path=self.known_hosts_path
        )

    def run(self, role: str, command: str, **kw: Any) -> subprocess.CompletedProcess[Any]:
        """Run a shell command on ``role`` over OpenSSH from the root namespace."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 120)
        check = kw.pop("check", False)
        return subprocess.run(self[role].ssh_argv(command), check=check, **kw)


def write_lab_params(ssh_hosts: SshHosts, lab: Path, tmp_path: Path, mode: str,
                     **source: Any) -> Path:
    """``tmp_path/params.yaml``: Alice on esx-a served by host a, Bob to esx-b on host b, in
    transfer ``mode`` (with the peer key and known_hosts host a needs unless relay)."""
    src = lab_host(ssh_hosts.a, "esx-a", lab, ssh_mode=mode, **source)
    if mode != "relay":  # how host a reaches host b: paths on host a
        src.update(ssh_direct_key=ssh_hosts.peer_key.path,
                   ssh_direct_known_hosts=ssh_hosts.known_hosts_path)
    pf = tmp_path / "params.yaml"
    pf.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "operator": "test", "downtime_budget": "30s",
        "source": src, "destination": lab_host(ssh_hosts.b, "esx-b", lab),
        "workspace": str(tmp_path / "ws")}))
    return pf


def settings_for(h: SshHost, **kw: Any) -> SshSettings:
    """SshSettings reaching ``h`` with its test key and known_hosts, no ssh-agent."""
    base: dict[str, Any] = dict(
        host=h.ip, port=h.port, user=h.user, key_filename=h.key_path,
        known_hosts=h.known_hosts_path, allow_agent=False, connect_timeout=10,
        io_timeout=20, backoff=0.2,
    )
    base.update(kw)
    return SshSettings(**base)


def open_agent_ds(h: SshHost, root: Path, **kw: Any) -> SshAgentDatastore:
    """Folder ``root`` as a datastore named after it, through an agent on ``h``."""
    ds = open_ssh_datastore(root.name, str(root), settings_for(h, **kw))
    assert isinstance(ds, SshAgentDatastore)
    return ds


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


def agents_serving(root: Path) -> set[int]:
    """The pids of every agent process serving the datastore folder ``root``."""
    out = subprocess.run(["pgrep", "-f", f"vmigrate-agent-.* --root {root}"],
                         capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def kill_session(agent_pid: int) -> int:
    """Kill the sshd session process serving an agent: the TCP connection drops."""
    ppid = parent_pid(agent_pid)
    cmd = Path(f"/proc/{ppid}/cmdline").read_bytes()
    assert b"sshd" in cmd, cmd
    os.kill(ppid, signal.SIGKILL)
    return ppid
