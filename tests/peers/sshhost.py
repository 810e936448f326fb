"""An SSH host as clients see it: key pairs, known_hosts lines, and ``SshHost``.

Kept apart from sshd.py (which runs the server) so that what a client needs to
reach a host reads on its own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

SSH = shutil.which("ssh") or "/usr/bin/ssh"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class SshKeyPair:
    path: str  # private key (OpenSSH format, no passphrase); public at path + ".pub"
    pub_line: str  # "ssh-ed25519 AAAA... comment"

    @classmethod
    def generate(
        cls,
        directory: str | os.PathLike[str],
        name: str = "id_ed25519",
        comment: str = "vmigrate-test",
    ) -> SshKeyPair:
        path = os.path.join(os.fspath(directory), name)
        for p in (path, path + ".pub"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
            check=True,
            capture_output=True,
        )
        os.chmod(path, 0o600)
        return cls(path=path, pub_line=Path(path + ".pub").read_text().strip())

    @property
    def fingerprint_sha256(self) -> str:
        return fingerprint_sha256(self.pub_line)


def fingerprint_sha256(pub_line: str) -> str:
    """'ssh-ed25519 AAAA...' -> 'SHA256:...' exactly as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_lines(ip: str, port: int, pub_line: str) -> list[str]:
    keytype, b64 = pub_line.split()[:2]
    lines = [f"[{ip}]:{port} {keytype} {b64}"]
    if port == 22:  # clients look the bare address up for the default port
        lines.append(f"{ip} {keytype} {b64}")
    return lines


def write_known_hosts(path: str | os.PathLike[str], hosts: Sequence[SshHost]) -> str:
    lines: list[str] = []
    for h in hosts:
        lines += known_hosts_lines(h.ip, h.port, h.host_pub_line)
    Path(path).write_text("\n".join(lines) + "\n")
    return os.fspath(path)


# --------------------------------------------------------------------------- host


@dataclass(frozen=True)
class SshHost:
    """How to reach one sshd: enough for paramiko and for ``ssh``."""

    name: str
    ip: str
    port: int
    user: str
    key_path: str  # client private key authorized on the host
    known_hosts_path: str  # has this host's key as [ip]:port (and bare ip if port 22)
    host_key_fingerprint_sha256: str  # "SHA256:..."
    netns: str | None = None  # namespace sshd runs in (None: root namespace / loopback)
    host_pub_line: str = ""  # "ssh-ed25519 AAAA..." (the host key)
    password: str | None = None  # only for the password-enabled variant

    def ssh_options(self) -> list[str]:
        opts = [
            "-F",
            "/dev/null",  # ignore ~/.ssh/config and /etc/ssh/ssh_config
            "-p",
            str(self.port),
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ]
        if self.password is None:
            opts += [
                "-i",
                self.key_path,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PreferredAuthentications=publickey",
            ]
        return opts

    def ssh_argv(self, *remote: str, extra: Sequence[str] = ()) -> list[str]:
        """``ssh ... user@ip -- remote...`` (remote words are joined by the remote shell)."""
        return [SSH, *self.ssh_options(), *extra, f"{self.user}@{self.ip}", "--", *remote]

    def ssh_command(self, *remote: str) -> str:
        """Same as ssh_argv, as one shell-quoted string (for running on another host)."""
        return shlex.join(self.ssh_argv(*remote))

    def paramiko_client(
        self, policy: Any = None, timeout: float = 10.0, **connect_kw: Any
    ) -> paramiko.SSHClient:
        """Connected client, host key checked against known_hosts (RejectPolicy)."""
        import paramiko

        c = paramiko.SSHClient()
        c.load_host_keys(self.known_hosts_path)
        c.set_missing_host_key_policy(policy or paramiko.RejectPolicy())
        kw: dict[str, Any] = {
            "hostname": self.ip,
            "port": self.port,
            "username": self.user,
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            "allow_agent": False,
            "look_for_keys": False,
        }
        if self.password is not None:
            kw["password"] = self.password
        else:
            kw["key_filename"] = self.key_path
        kw.update(connect_kw)
        try:
            c.connect(**kw)
        except BaseException:
            c.close()
            raise
        return c
