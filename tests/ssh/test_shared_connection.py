"""One SSH connection per host, shared by the datastores of a command; agents launched ahead.

Real sshd on loopback (``LogLevel VERBOSE``: one ``Accepted publickey for`` line per login,
OpenSSH auth2.c).  Issue 13 item 3: a command opened one connection (key exchange, login,
host-key check) per datastore handle and started each agent only at its first request.
Now handles on one host share one connection, the last to close closes it, a closed
handle does not break the others, and the agent's exec is sent when the handle opens, so
that the host starts its python3 while this machine goes on (two handles: both hosts'
starts overlap).  What only a real ESXi host would show: its sshd's ``MaxSessions`` (the
pool puts at most 4 handles on one connection, below OpenSSH's default of 10 channels).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.peers import sshd as peers_sshd
from tests.peers.sshd import SshdServer, SshHost
from tests.ssh.sshdp import settings_for
from vmigrate_lib.dataplane import open_ssh_datastore
from vmigrate_lib.dataplane.ssh import SshAgentDatastore
from vmigrate_lib.dataplane.ssh.connection import SHARED_USERS
from vmigrate_lib.dataplane.sshconfig import SshSettings
from vmigrate_lib.errors import SshHostUnreachable


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshdServer]:
    """An sshd of this module's own, whose log only these tests write."""
    if not os.access(peers_sshd.SSHD, os.X_OK):
        pytest.skip(f"{peers_sshd.SSHD} not found (install openssh-server)")
    with peers_sshd.start_sshd("shared") as srv:
        yield srv


def _logins(srv: SshdServer) -> int:
    return srv.log().count("Accepted publickey for")


def _root(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    return tmp_path


def test_handles_on_one_host_share_one_login(sshd: SshdServer, tmp_path: Path) -> None:
    """Before: 3 logins for 3 handles; closing one closed only its own connection."""
    s = settings_for(sshd.host)
    before = _logins(sshd)
    dss = [open_ssh_datastore(f"d{i}", str(_root(tmp_path)), s) for i in range(3)]
    try:
        assert all(isinstance(d, SshAgentDatastore) for d in dss)
        assert all(d.free_space() > 0 for d in dss)
        conn = dss[0].transport.conn  # type: ignore[attr-defined]
        assert all(d.transport.conn is conn for d in dss)  # type: ignore[attr-defined]
        assert _logins(sshd) - before == 1
        dss[0].close()
        assert conn.active and dss[1].free_space() > 0 and dss[2].stat("nothing") is None
    finally:
        for d in dss[1:]:
            d.close()
    assert not conn.active  # the last user closed it
    again = open_ssh_datastore("d", str(tmp_path), s)
    try:
        assert again.transport.conn is not conn  # type: ignore[attr-defined]
    finally:
        again.close()


def test_pool_spreads_beyond_its_users(ssh_loopback: SshHost, tmp_path: Path) -> None:
    s = settings_for(ssh_loopback)
    dss = [open_ssh_datastore(f"d{i}", str(_root(tmp_path)), s) for i in range(SHARED_USERS + 1)]
    try:
        conns = {id(d.transport.conn) for d in dss}  # type: ignore[attr-defined]
        assert len(conns) == 2
        assert all(d.free_space() > 0 for d in dss)
    finally:
        for d in dss:
            d.close()


def test_agent_exec_is_sent_when_the_handle_opens(ssh_loopback: SshHost, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: no exec until the first request."""
    execs: list[str] = []
    real = paramiko.Channel.exec_command

    def spy(self: paramiko.Channel, command: str) -> None:
        execs.append(command)
        real(self, command)

    monkeypatch.setattr(paramiko.Channel, "exec_command", spy)
    ds = open_ssh_datastore("d", str(_root(tmp_path)), settings_for(ssh_loopback))
    try:
        assert len(execs) == 1  # launched, not waited for
        assert ds.free_space() > 0
        assert ds.stat("nothing") is None
        assert len(execs) == 1  # the launched agent served the requests
    finally:
        ds.close()


def test_unreachable_host_is_reported_at_first_use(tmp_path: Path) -> None:
    """The launch ahead meets the refusal; the first request raises it, as before (one
    line, exit 2 at preflight), and opening the handle raises nothing."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the with block ends: connections refused
    ds = open_ssh_datastore("d", str(tmp_path), SshSettings(
        host="127.0.0.1", port=port, allow_agent=False, connect_timeout=5, retries=0))
    try:
        with pytest.raises(SshHostUnreachable):
            ds.free_space()
    finally:
        ds.close()


def test_host_allowing_one_session_per_connection(tmp_path: Path) -> None:
    """sshd with ``MaxSessions 1`` (the DISA STIG for ESXi 6.7, ESXI-67-000028, asks for it:
    "The ESXi host SSH daemon must limit connections to a single session"; OpenSSH's default
    is 10, sshd_config(5)) refuses a second session on the shared connection: that handle
    moves to a connection of its own and both work.  Before this fallback the second
    handle's agent could not start (TransportError: ChannelException(2, 'Connect failed'))."""
    with peers_sshd.start_sshd("single") as srv:
        cfg = Path(srv.config_path)
        cfg.write_text(cfg.read_text().replace("MaxSessions 64", "MaxSessions 1"))
        os.kill(srv.proc.pid, signal.SIGHUP)  # sshd re-executes itself with the new config
        time.sleep(1.0)
        s = settings_for(srv.host, retries=0)
        a = open_ssh_datastore("a", str(_root(tmp_path)), s)
        b = open_ssh_datastore("b", str(tmp_path), s)
        try:
            assert a.free_space() > 0 and b.free_space() > 0
            assert a.transport.conn is not b.transport.conn  # type: ignore[attr-defined]
            assert _logins(srv) == 2
            c = open_ssh_datastore("c", str(tmp_path), s)  # the full one takes no one new
            try:
                assert c.free_space() > 0
            finally:
                c.close()
        finally:
            a.close()
            b.close()
