"""Hosts a and b: a real OpenSSH sshd each, in its own network namespace behind a shaped link.

One set-up for the SSH tests' session fixture (tests/ssh/conftest.py ``ssh_hosts``) and the
benches (bench_seed, bench_startup, bench_planner, bench_ssh): the topology
(:mod:`tests.peers.netns`), a client key this machine logs in with, a peer key host a logs
in to b with (direct mode), and one known_hosts listing both hosts' keys.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from tests.peers.netns import Topology
from tests.peers.sshd import SshdServer, SshHost, SshKeyPair, start_sshd, write_known_hosts

#: sshd_config lines for a session that runs no shell rc file, as ESXi's busybox ash runs
#: none for a command: bash reads ~/.bashrc for an sshd command only when SHLVL < 2 (bash
#: shell.c run_startup_files; sshd_config(5) SetEnv, OpenSSH 8.7+).  The benches'
#: ``--esxi-shell`` profile.
ESXI_SHELL = ("SetEnv SHLVL=1",)


@dataclass
class NamespacePair:
    """The running pair; ``servers[role].host`` as sshd reports it, ``a``/``b`` with the
    shared known_hosts, ``a_to_b``: b as host a reaches it (peer key)."""

    topology: Topology
    servers: dict[str, SshdServer]
    client_key: SshKeyPair
    peer_key: SshKeyPair
    known_hosts: str

    def host(self, role: str) -> SshHost:
        return replace(self.servers[role].host, known_hosts_path=self.known_hosts)

    @property
    def a(self) -> SshHost:
        return self.host("a")

    @property
    def b(self) -> SshHost:
        return self.host("b")

    @property
    def a_to_b(self) -> SshHost:
        return replace(self.b, key_path=self.peer_key.path)


@contextlib.contextmanager
def namespace_pair(work: str | os.PathLike[str], rate: str | None, delay: str | None = None,
                   tag: str = "", prefix: str = "",
                   extra_config: Sequence[str] = ()) -> Iterator[NamespacePair]:
    """Build the pair with links of ``rate``/``delay`` (``tc``; a kernel without sch_netem
    gets no delay, ``Link.delay_applied`` says so); keys and known_hosts go to ``work``,
    named with ``tag`` (several pairs may share a folder); the sshd peers are named
    ``prefix`` + role, with ``extra_config`` lines in their sshd_config.  Everything stops
    on exit."""
    topo = Topology(("a", "b"), rate=rate, delay=delay)
    servers: dict[str, SshdServer] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no sch_netem": see Link.delay_applied
            topo.create()
        client = SshKeyPair.generate(work, f"client{tag}", comment="vmigrate-test-client")
        peer = SshKeyPair.generate(work, f"peer{tag}", comment="vmigrate-test-peer")
        for role in topo.links:
            servers[role] = start_sshd(f"{prefix}{role}", ip=topo.ip(role), netns=topo.netns(role),
                                       client_key=client, authorized_keys=[peer.pub_line],
                                       extra_config=extra_config)
        kh = write_known_hosts(os.path.join(work, f"known_hosts{tag}"),
                               [s.host for s in servers.values()])
        yield NamespacePair(topo, servers, client, peer, kh)
    finally:
        for s in servers.values():
            s.stop()
        topo.close()
