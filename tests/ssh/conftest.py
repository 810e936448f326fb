"""Fixtures: real OpenSSH sshd peers (loopback, and one per network namespace).

    ssh_loopback                -> SshHost          (session; sshd on 127.0.0.1:<free port>)
    ssh_password_loopback       -> SshHost          (session; throwaway user, password auth)
    ssh_hosts                   -> SshHosts         (session; netns a, b; links 1gbit/1ms)
    shape_link                  -> (role, rate=..., delay=...) -> Link   (restored after test)
    peers_available             -> (bool, reason)
    roots                       -> (Path, Path)     (two datastore folders a, b any login reads)

Tests needing namespaces are skipped with netns.available()'s reason where it is
False (not root, no ``ip netns``, no sshd).  See tests/peers/NETNS.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.peers import netns as peers_netns
from tests.peers import sshd as peers_sshd
from tests.peers import sshusers
from tests.peers.netns import Link, Topology
from tests.peers.sshd import SshdServer, SshHost, SshKeyPair
from tests.ssh.sshdp import SshHosts

DEFAULT_RATE = "1gbit"
DEFAULT_DELAY = "1ms"


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two datastore folders ``a`` and ``b``; their parent is 0755 so any login reaches them."""
    os.chmod(tmp_path, 0o755)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return a, b


@pytest.fixture(scope="session")
def peers_available() -> tuple[bool, str]:
    return peers_netns.available()


@pytest.fixture(scope="session")
def ssh_loopback() -> Iterator[SshHost]:
    """One real sshd on 127.0.0.1 at a free port (no namespaces, no root needed)."""
    if not os.access(peers_sshd.SSHD, os.X_OK):
        pytest.skip(f"{peers_sshd.SSHD} not found (install openssh-server)")
    with peers_sshd.start_sshd("loopback") as srv:
        yield srv.host


@pytest.fixture(scope="session")
def ssh_password_loopback() -> Iterator[SshHost]:
    """sshd on 127.0.0.1 with PasswordAuthentication yes for a throwaway user."""
    if not os.access(peers_sshd.SSHD, os.X_OK):
        pytest.skip(f"{peers_sshd.SSHD} not found (install openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("password variant creates a throwaway user: needs root")
    with contextlib.ExitStack() as stack:
        try:
            user, password = stack.enter_context(sshusers.throwaway_user())
        except sshusers.UserError as e:
            pytest.skip(str(e))
        srv = stack.enter_context(peers_sshd.start_sshd("password", user=user, password=password))
        yield srv.host


@pytest.fixture(scope="session")
def ssh_hosts() -> Iterator[SshHosts]:
    """Namespaces a, b each with sshd on port 22; links shaped 1gbit (+1ms where netem exists)."""
    ok, why = peers_netns.available()
    if not ok:
        pytest.skip(why)
    peers_sshd.cleanup_stale_dirs()
    wd = tempfile.mkdtemp(prefix=f"vmg-peers-{os.getpid()}-")
    os.chmod(wd, 0o755)
    topo = Topology(("a", "b"), rate=DEFAULT_RATE, delay=DEFAULT_DELAY)
    servers: dict[str, SshdServer] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no sch_netem" is reported via Link.delay_applied
            topo.create()
        client = SshKeyPair.generate(wd, "client_ed25519", comment="vmigrate-test-client")
        peer = SshKeyPair.generate(wd, "peer_ed25519", comment="vmigrate-test-peer")
        for role in topo.links:
            servers[role] = peers_sshd.start_sshd(
                role,
                ip=topo.ip(role),
                netns=topo.netns(role),
                client_key=client,
                authorized_keys=[peer.pub_line],
            )
        kh = peers_sshd.write_known_hosts(
            os.path.join(wd, "known_hosts"), [s.host for s in servers.values()]
        )
        yield SshHosts(
            topology=topo,
            servers=servers,
            client_key=client,
            peer_key=peer,
            known_hosts_path=kh,
            workdir=wd,
        )
    finally:
        for s in servers.values():
            s.stop()
        topo.close()
        shutil.rmtree(wd, ignore_errors=True)


@pytest.fixture
def shape_link(ssh_hosts: SshHosts) -> Iterator[Callable[..., Link]]:
    """``shape_link("a", rate="100mbit", delay=None)`` reshapes both directions of a's link
    for this test; every link touched is put back to 1gbit/1ms afterwards."""
    touched: set[str] = set()

    def shape(role: str, rate: str | None = "100mbit", delay: str | None = None) -> Link:
        touched.add(role)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ssh_hosts.topology.shape(role, rate=rate, delay=delay)

    yield shape
    for role in touched:
        shape(role, DEFAULT_RATE, DEFAULT_DELAY)
