"""The SSH peers themselves: real sshd, host-key checking, namespaces, shaped links."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
import pytest

from tests.peers import netns as peers_netns
from tests.peers import sshd as peers_sshd
from tests.peers.netns import Link
from tests.peers.sshd import SshHost, SshKeyPair

if TYPE_CHECKING:
    from tests.ssh.sshdp import SshHosts

MB = 1024 * 1024
SIZE = 50 * MB


def _exec(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _, out, err = client.exec_command(command, timeout=30)
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode(), err.read().decode()


# --------------------------------------------------------------------------- loopback


def test_paramiko_runs_python_with_verified_host_key(ssh_loopback: SshHost) -> None:
    c = ssh_loopback.paramiko_client()  # RejectPolicy + generated known_hosts
    try:
        key = c.get_transport().get_remote_server_key()  # type: ignore[union-attr]
        assert key.get_name() == "ssh-ed25519"
        fp = peers_sshd.fingerprint_sha256(f"{key.get_name()} {key.get_base64()}")
        assert fp == ssh_loopback.host_key_fingerprint_sha256
        assert _exec(c, "python3 -c 'print(1)'") == (0, "1\n", "")
    finally:
        c.close()


def test_fingerprint_matches_ssh_keygen(ssh_loopback: SshHost) -> None:
    out = subprocess.run(
        [
            "ssh-keygen",
            "-l",
            "-E",
            "sha256",
            "-F",
            f"[{ssh_loopback.ip}]:{ssh_loopback.port}",
            "-f",
            ssh_loopback.known_hosts_path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ssh_loopback.host_key_fingerprint_sha256 in out


def test_unknown_host_key_is_rejected(ssh_loopback: SshHost, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        SshHost(**{**vars(ssh_loopback), "known_hosts_path": str(empty)}).paramiko_client()

    # A *different* key recorded for the same [ip]:port: paramiko and OpenSSH refuse.
    other = SshKeyPair.generate(tmp_path, "other_host_key")
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(
        "\n".join(peers_sshd.known_hosts_lines(ssh_loopback.ip, ssh_loopback.port, other.pub_line))
        + "\n"
    )
    impostor = SshHost(**{**vars(ssh_loopback), "known_hosts_path": str(wrong)})
    with pytest.raises(paramiko.BadHostKeyException):
        impostor.paramiko_client()
    p = subprocess.run(
        impostor.ssh_argv("true"), check=False, capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in p.stderr or "verification failed" in p.stderr
    p = subprocess.run(
        SshHost(**{**vars(ssh_loopback), "known_hosts_path": str(empty)}).ssh_argv("true"),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 255 and "verification failed" in p.stderr


def test_wrong_client_key_is_refused(ssh_loopback: SshHost, tmp_path: Path) -> None:
    stranger = SshKeyPair.generate(tmp_path, "stranger")
    h = SshHost(**{**vars(ssh_loopback), "key_path": stranger.path})
    with pytest.raises(paramiko.AuthenticationException):
        h.paramiko_client()
    p = subprocess.run(h.ssh_argv("true"), check=False, capture_output=True, text=True, timeout=30)
    assert p.returncode == 255 and "Permission denied" in p.stderr


def test_openssh_cat_loopback(ssh_loopback: SshHost) -> None:
    data = os.urandom(256 * 1024)
    p = subprocess.run(
        ssh_loopback.ssh_argv("cat"), input=data, check=False, capture_output=True, timeout=30
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == data


def test_sftp_subsystem(ssh_loopback: SshHost, tmp_path: Path) -> None:
    c = ssh_loopback.paramiko_client()
    try:
        sftp = c.open_sftp()
        sftp.putfo(__import__("io").BytesIO(b"agent"), str(tmp_path / "agent.py"))
        sftp.close()
    finally:
        c.close()
    assert (tmp_path / "agent.py").read_bytes() == b"agent"


def test_password_variant(ssh_password_loopback: SshHost) -> None:
    h = ssh_password_loopback
    c = h.paramiko_client()
    try:
        assert _exec(c, "id -un") == (0, f"{h.user}\n", "")
    finally:
        c.close()
    with pytest.raises(paramiko.AuthenticationException):
        SshHost(**{**vars(h), "password": "wrong"}).paramiko_client()


# --------------------------------------------------------------------------- namespaces


def test_available_gives_a_reason() -> None:
    ok, why = peers_netns.available()
    assert isinstance(ok, bool) and isinstance(why, str)
    assert ok or why


@pytest.mark.netns
def test_paramiko_to_each_netns_host(ssh_hosts: SshHosts) -> None:
    for role in ssh_hosts.roles:
        h = ssh_hosts[role]
        assert h.netns == ssh_hosts.topology.netns(role) and h.port == 22
        c = h.paramiko_client()
        try:
            assert _exec(c, "python3 -c 'print(1)'") == (0, "1\n", "")
            _rc, out, _ = _exec(c, "echo $SSH_CONNECTION")
            # client = root ns bridge address, server = this host's own address
            client_ip, _, server_ip, server_port = out.split()
            assert (client_ip, server_ip, server_port) == (ssh_hosts.topology.root_ip, h.ip, "22")
        finally:
            c.close()


@pytest.mark.netns
def test_openssh_cat_from_root_ns(ssh_hosts: SshHosts, tmp_path: Path) -> None:
    data = os.urandom(1 * MB)
    for role in ssh_hosts.roles:
        p = subprocess.run(
            ssh_hosts[role].ssh_argv("cat"),
            input=data,
            check=False,
            capture_output=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        assert p.stdout == data


@pytest.mark.netns
def test_hosts_share_the_filesystem(ssh_hosts: SshHosts, tmp_path: Path) -> None:
    """A namespace isolates only the network: any folder can be a host's datastore."""
    ds = tmp_path / "datastore"
    ds.mkdir()
    (ds / "disk-flat.vmdk").write_bytes(b"\x01" * 4096)
    os.chmod(tmp_path, 0o755)
    p = ssh_hosts.run("a", f"sha256sum {ds / 'disk-flat.vmdk'} && echo x > {ds / 'from-a'}")
    assert p.returncode == 0, p.stderr
    assert (ds / "from-a").read_text() == "x\n"


@pytest.mark.netns
def test_direct_mode_host_a_to_host_b(ssh_hosts: SshHosts) -> None:
    to_b = ssh_hosts.peer("a", "b")
    assert to_b.key_path == ssh_hosts.peer_key.path
    p = ssh_hosts.run("a", to_b.ssh_command("echo $SSH_CONNECTION; hostname -I"))
    assert p.returncode == 0, p.stderr
    conn, addrs = p.stdout.splitlines()
    assert conn.split()[0] == ssh_hosts.a.ip  # came from a's namespace ...
    assert conn.split()[2] == ssh_hosts.b.ip  # ... to b's sshd
    assert addrs.split() == [ssh_hosts.b.ip]

    # b's key is checked on a too: an unknown key is refused there.
    bad = peers_sshd.SshHost(**{**vars(to_b), "known_hosts_path": "/dev/null"})
    p = ssh_hosts.run("a", bad.ssh_command("true"))
    assert p.returncode == 255 and "verification failed" in p.stderr


@pytest.mark.netns
def test_namespaces_reach_nothing_outside(ssh_hosts: SshHosts) -> None:
    """Hosts have only their /24: no default route, so no traffic can leave."""
    topo = ssh_hosts.topology
    p = topo.run("a", ["ip", "-4", "route"])
    assert "default" not in p.stdout
    probe = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(2)\n"
        "try:\n s.connect(('192.0.2.1', 9)); print('connected')\n"
        "except OSError as e: print(e.errno)\n"
    )
    p = topo.run("a", ["python3", "-c", probe])
    assert p.stdout.strip() == "101"  # ENETUNREACH


@pytest.mark.netns
def test_stale_leftovers_are_cleaned() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    ns, link = f"vmg-{dead.pid}-0-a", f"vg{dead.pid}k0br"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "link", "add", link, "type", "bridge"], check=True)
    try:
        removed = peers_netns.cleanup_stale()
        assert f"netns {ns}" in removed and any(link in r for r in removed)
        assert ns not in peers_netns.list_resources()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)


@pytest.mark.netns
def test_shape_link_changes_qdisc(ssh_hosts: SshHosts, shape_link: Callable[..., Link]) -> None:
    link = shape_link("b", rate="100mbit")
    q = ssh_hosts.topology.qdiscs("b")
    assert q.count("100Mbit") == 2, q  # both directions
    assert link.rate == "100mbit" and not link.delay_applied


@pytest.mark.netns
def test_default_link_delay(ssh_hosts: SshHosts) -> None:
    link = ssh_hosts.topology.links["a"]
    assert link.rate == "1gbit" and link.delay == "1ms"
    if not peers_netns.netem_supported():
        pytest.skip("kernel has no sch_netem: links are rate-shaped (tbf) but get no delay")
    assert link.delay_applied
    # TCP connect = one RTT = delay each way
    t0 = time.perf_counter()
    socket.create_connection((link.ip, 22), timeout=5).close()
    assert time.perf_counter() - t0 >= 0.0018


# --------------------------------------------------------------------------- throughput


def _download(h: SshHost, path: Path) -> float:
    """Seconds for ``ssh cat path`` (host -> root ns), bytes checked."""
    t0 = time.perf_counter()
    p = subprocess.Popen(h.ssh_argv("cat", str(path)), stdout=subprocess.PIPE)
    assert p.stdout is not None
    n = 0
    while chunk := p.stdout.read(1 << 20):
        n += len(chunk)
    assert p.wait(60) == 0
    dt = time.perf_counter() - t0
    assert n == path.stat().st_size
    return dt


def _upload(h: SshHost, path: Path) -> float:
    """Seconds for ``ssh 'cat > /dev/null' < path`` (root ns -> host)."""
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        p = subprocess.run(
            h.ssh_argv("cat > /dev/null"), stdin=f, check=False, capture_output=True, timeout=120
        )
        dt = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    return dt


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    with open(path, "wb") as f:
        f.writelines(os.urandom(MB) for _ in range(SIZE // MB))
    os.chmod(tmp_path, 0o755)
    return path


@pytest.mark.netns
def test_100mbit_link_throughput(
    ssh_hosts: SshHosts,
    shape_link: Callable[..., Link],
    payload: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """100 Mbit/s = 12.5 MB/s raw; through TCP+SSH ~11.  The shaping is proved by the
    cap (never above 13 MB/s); the figures are recorded, not bounded below: a loaded
    shared runner may be slower than the link."""
    shape_link("a", rate="100mbit")
    down = SIZE / MB / _download(ssh_hosts.a, payload)
    up = SIZE / MB / _upload(ssh_hosts.a, payload)
    # direct mode: a streams to b (limited by a's 100mbit egress)
    to_b = ssh_hosts.peer("a", "b")
    t0 = time.perf_counter()
    p = ssh_hosts.run("a", f"{to_b.ssh_command('cat > /dev/null')} < {payload}")
    direct = SIZE / MB / (time.perf_counter() - t0)
    assert p.returncode == 0, p.stderr
    for k, v in (("down", down), ("up", up), ("a_to_b", direct)):
        record_property(f"100mbit_{k}_MBps", round(v, 2))
    with capsys.disabled():
        print(
            f"\n100mbit link: root<-a {down:.1f} MB/s, root->a {up:.1f} MB/s, "
            f"a->b {direct:.1f} MB/s"
        )
    for v in (down, up, direct):
        assert v <= 13, (down, up, direct)


@pytest.mark.netns
def test_1gbit_link_throughput(
    ssh_hosts: SshHosts,
    payload: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Default 1 Gbit/s link: at most ~125 MB/s (the figure is recorded; no lower bound,
    which would measure the runner's load, not the link)."""
    down = SIZE / MB / _download(ssh_hosts.b, payload)
    record_property("1gbit_down_MBps", round(down, 2))
    with capsys.disabled():
        print(f"\n1gbit link: root<-b {down:.1f} MB/s")
    assert down <= 130, down
