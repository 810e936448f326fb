"""Real OpenSSH sshd peers for tests (Debian openssh-server).

``start_sshd()`` runs ``/usr/sbin/sshd -D -e -f <config>`` either inside a network
namespace (``ip netns exec NS sshd ...``, see netns.py) or on 127.0.0.1 at a free
port, with a host key (ed25519) generated for this run, public-key login only by
default, and a known_hosts file for clients.  The result's ``.host`` is an
``SshHost`` usable by paramiko and by the OpenSSH client alike::

    kp = SshKeyPair.generate(workdir)
    srv = start_sshd("loopback", authorized_keys=[kp.pub_line], client_key=kp.path)
    h = srv.host
    subprocess.run(h.ssh_argv("echo", "hi"))            # OpenSSH
    c = h.paramiko_client(); c.exec_command("echo hi")   # paramiko, RejectPolicy
    srv.stop()

Namespaces only isolate the network: a process inside sees the same
filesystem, so any folder can serve as a host's datastore.

By hand (root)::

    python -m tests.peers.sshd up            # netns a,b + sshd each; prints ssh commands
    python -m tests.peers.sshd up --loopback # one sshd on 127.0.0.1
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.peers.orphans import die_with_parent
from tests.peers.sshhost import (  # re-exported: the fixtures import them from here
    SshHost,
    SshKeyPair,
    fingerprint_sha256,
    known_hosts_lines,
    write_known_hosts,
)

SSHD = "/usr/sbin/sshd"
SSH = shutil.which("ssh") or "/usr/bin/ssh"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
IP = shutil.which("ip") or "/usr/sbin/ip"
PRIVSEP_DIR = "/run/sshd"


class SshdError(RuntimeError):
    pass


__all__ = ["SshHost", "SshKeyPair", "SshdError", "SshdServer", "fingerprint_sha256",
           "known_hosts_lines", "start_sshd", "write_known_hosts"]


# --------------------------------------------------------------------------- server


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def sshd_config(
    *,
    ip: str,
    port: int,
    host_key: str,
    authorized_keys: str,
    pid_file: str,
    password_auth: bool = False,
    extra: Sequence[str] = (),
) -> str:
    lines = [
        f"Port {port}",
        f"ListenAddress {ip}",
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PubkeyAuthentication yes",
        f"PasswordAuthentication {'yes' if password_auth else 'no'}",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "PermitEmptyPasswords no",
        "StrictModes no",
        "UsePAM no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "AllowTcpForwarding yes",
        "MaxStartups 64:30:128",
        "MaxSessions 64",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
        *extra,
    ]
    return "\n".join(lines) + "\n"


@dataclass
class SshdServer:
    """A running sshd.  ``stop()`` (or context exit) kills it and removes its files."""

    host: SshHost
    proc: subprocess.Popen[bytes]
    workdir: str
    log_path: str
    config_path: str
    own_workdir: bool = True
    _stopped: bool = field(default=False, repr=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def authorize(self, pub_line: str) -> None:
        """Add another public key to this host's authorized_keys (read per login)."""
        ak = _config_value(self.config_path, "AuthorizedKeysFile")
        with open(ak, "a") as f:
            f.write(pub_line.strip() + "\n")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _config_value(config_path: str, key: str) -> str:
    for line in Path(config_path).read_text().splitlines():
        parts = line.split(None, 1)
        if parts and parts[0].lower() == key.lower():
            return parts[1].strip()
    raise KeyError(key)


def start_sshd(
    name: str,
    *,
    ip: str = "127.0.0.1",
    port: int | None = None,
    netns: str | None = None,
    authorized_keys: Sequence[str] = (),
    client_key: SshKeyPair | None = None,
    user: str | None = None,
    password: str | None = None,
    workdir: str | None = None,
    extra_config: Sequence[str] = (),
    timeout: float = 10.0,
    wrap: Sequence[str] = (),
) -> SshdServer:
    """Start sshd for ``name`` listening on ``ip:port``.

    ``netns``: run inside that namespace (``ip`` must be an address there; port
    defaults to 22, the namespace has its own port space).  Otherwise port
    defaults to a free one on ``ip`` (loopback).  A client key pair is generated
    unless ``client_key`` is given; it is always authorized, with
    ``authorized_keys`` on top.  ``password`` turns PasswordAuthentication on and
    makes ``.host`` log in with it (``user`` must then exist with that password).
    ``wrap``: an argv that runs sshd's argv after it (inside the namespace), e.g. a mount
    namespace that hides a file from every session (tests/ssh/test_push_stream.py).
    """
    if not os.access(SSHD, os.X_OK):
        raise SshdError(f"{SSHD} not found (install openssh-server)")
    own = workdir is None
    if own:
        cleanup_stale_dirs()
    wd = workdir or tempfile.mkdtemp(prefix=f"vmg-sshd-{os.getpid()}-{name}-")
    os.makedirs(wd, exist_ok=True)
    os.chmod(wd, 0o755)
    if os.geteuid() == 0:
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
    user = user or getpass.getuser()
    try:
        hk = SshKeyPair.generate(wd, "ssh_host_ed25519_key", comment=f"{name}-hostkey")
        ck = client_key or SshKeyPair.generate(wd, "client_ed25519", comment=f"{name}-client")
        ak_path = os.path.join(wd, "authorized_keys")
        Path(ak_path).write_text("".join(k.strip() + "\n" for k in [ck.pub_line, *authorized_keys]))
        os.chmod(ak_path, 0o644)
        attempts = 1 if (port is not None or netns is not None) else 5
        last_err = ""
        for _ in range(attempts):
            p = port if port is not None else (22 if netns else free_port(ip))
            cfg_path = os.path.join(wd, "sshd_config")
            log_path = os.path.join(wd, "sshd.log")
            Path(cfg_path).write_text(
                sshd_config(
                    ip=ip,
                    port=p,
                    host_key=hk.path,
                    authorized_keys=ak_path,
                    pid_file=os.path.join(wd, "sshd.pid"),
                    password_auth=password is not None,
                    extra=extra_config,
                )
            )
            # Fail fast on a bad config rather than via a timeout.
            t = subprocess.run(
                [SSHD, "-t", "-f", cfg_path], check=False, capture_output=True, text=True
            )
            if t.returncode != 0:
                raise SshdError(f"sshd -t rejected config: {t.stderr.strip()}")
            argv = [*wrap, SSHD, "-D", "-e", "-f", cfg_path]
            if netns:
                argv = [IP, "netns", "exec", netns, *argv]
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=die_with_parent,
                    close_fds=True,
                )
            kh_path = os.path.join(wd, "known_hosts")
            Path(kh_path).write_text("\n".join(known_hosts_lines(ip, p, hk.pub_line)) + "\n")
            host = SshHost(
                name=name,
                ip=ip,
                port=p,
                user=user,
                key_path=ck.path,
                known_hosts_path=kh_path,
                host_key_fingerprint_sha256=hk.fingerprint_sha256,
                netns=netns,
                host_pub_line=hk.pub_line,
                password=password,
            )
            srv = SshdServer(
                host=host,
                proc=proc,
                workdir=wd,
                log_path=log_path,
                config_path=cfg_path,
                own_workdir=own,
            )
            ok, last_err = _wait_ready(srv, timeout)
            if ok:
                return srv
            srv.own_workdir = False
            srv.stop()
            if "Address already in use" not in last_err:
                break
        raise SshdError(f"sshd {name} on {ip} did not start: {last_err}")
    except BaseException:
        if own:
            shutil.rmtree(wd, ignore_errors=True)
        raise


def _wait_ready(srv: SshdServer, timeout: float) -> tuple[bool, str]:
    """Wait for 'Server listening' in the log and an SSH banner on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not srv.alive():
            return False, f"exited rc={srv.proc.returncode}: {srv.log().strip()}"
        if "Server listening on" in srv.log():
            try:
                with socket.create_connection((srv.host.ip, srv.host.port), timeout=2) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return True, ""
            except OSError:
                pass
        time.sleep(0.05)
    return False, f"timeout after {timeout}s: {srv.log().strip()}"


def cleanup_stale_dirs() -> list[str]:
    """Remove $TMPDIR/vmg-<kind>-<pid>-* work dirs whose pid is gone (killed runs)."""
    removed = []
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        m = re.match(r"^vmg(?:-[a-z]+|pw)-?(\d+)-", entry)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)
        removed.append(entry)
    return removed


# --------------------------------------------------------------------------- by hand


def _main(argv: Sequence[str]) -> int:
    import argparse

    from tests.peers import netns as netns_mod

    ap = argparse.ArgumentParser(prog="python -m tests.peers.sshd")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start sshd peers and wait until Ctrl-C")
    up.add_argument("--loopback", action="store_true")
    up.add_argument("--roles", default="a,b")
    up.add_argument("--rate", default="1gbit")
    up.add_argument("--delay", default="1ms")
    a = ap.parse_args(argv)
    with contextlib.ExitStack() as st:
        wd = tempfile.mkdtemp(prefix=f"vmg-peers-{os.getpid()}-")
        st.callback(shutil.rmtree, wd, True)
        ck = SshKeyPair.generate(wd, "client_ed25519")
        servers: list[SshdServer] = []
        if a.loopback:
            servers.append(st.enter_context(start_sshd("loopback", client_key=ck)))
        else:
            ok, why = netns_mod.available()
            if not ok:
                print(why, file=sys.stderr)
                return 2
            topo = st.enter_context(
                netns_mod.Topology(
                    tuple(a.roles.split(",")), rate=a.rate or None, delay=a.delay or None
                )
            )
            for r in topo.links:
                servers.append(
                    st.enter_context(
                        start_sshd(r, ip=topo.ip(r), netns=topo.netns(r), client_key=ck)
                    )
                )
            print(f"bridge {topo.bridge} {topo.root_ip}  subnet {topo.subnet}")
        kh = write_known_hosts(os.path.join(wd, "known_hosts"), [s.host for s in servers])
        for s in servers:
            h = s.host
            print(
                f"{h.name}: netns={h.netns} {h.user}@{h.ip}:{h.port} {h.host_key_fingerprint_sha256}"
            )
            print(
                "   ",
                shlex.join(
                    [
                        SSH,
                        "-F",
                        "/dev/null",
                        "-i",
                        ck.path,
                        "-o",
                        f"UserKnownHostsFile={kh}",
                        "-p",
                        str(h.port),
                        f"{h.user}@{h.ip}",
                    ]
                ),
            )
        print("Ctrl-C to tear down", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
