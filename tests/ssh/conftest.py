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
from tests.peers.hostpair import namespace_pair
from tests.peers.netns import Link
from tests.peers.sshd import SshHost
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
    try:
        with namespace_pair(wd, DEFAULT_RATE, DEFAULT_DELAY, tag="_ed25519") as pair:
            yield SshHosts(topology=pair.topology, servers=pair.servers,
                           client_key=pair.client_key, peer_key=pair.peer_key,
                           known_hosts_path=pair.known_hosts, workdir=wd)
    finally:
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
