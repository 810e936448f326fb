"""Connection settings for the SSH data plane, built once from :class:`HostParams`.

One frozen value carries everything a connection needs (address, identity,
host-key policy, tuning, retry policy), so that callers never assemble a
24-keyword ``connect()`` and a reconnect uses exactly what the first connect
used.  Secrets are never stored here: a password is a *reference* (an
environment variable or a keyring entry) resolved at connect time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..credentials import SecretRef, resolve_secret
from ..errors import ParameterError
from ..modes import SSH_COMPRESS, SSH_MODES
from ..params import HostParams

MiB = 1024 * 1024

#: AES-GCM first: hardware AES, one pass for cipher+MAC (paramiko via cryptography).
DEFAULT_CIPHERS: tuple[str, ...] = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)

#: RFC 4344 3.2: an L-bit block cipher rekeys at least every 2**(L/4) blocks; AES
#: (L = 128): 2**32 blocks of 16 bytes = 64 GiB, OpenSSH's default for AES.
RFC4344_AES_BYTES = 2**32 * 16
#: RFC 4344 3.1: at least every 2**32 packets (the sequence number wraps); 2**31 keeps margin.
RFC4344_PACKETS = 2**31


@dataclass(frozen=True)
class DirectRoute:
    """How the *source* host reaches destination hosts with OpenSSH (direct mode).

    Paths are on the source host.  ``extra_options`` are ``-o`` options passed
    through verbatim (e.g. ``Ciphers=aes128-gcm@openssh.com``).
    """

    identity: str = ""  #: private key on the source host, authorized on the destination
    known_hosts: str = ""  #: known_hosts on the source host listing the destination
    ssh: str = "ssh"  #: the OpenSSH client on the source host
    extra_options: tuple[str, ...] = ()
    connect_timeout: float = 10.0

    def argv(self, host: str, port: int, user: str, remote: str) -> list[str]:
        """``ssh ... user@host -- remote`` as run on the source host."""
        argv = [self.ssh, "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={int(self.connect_timeout)}",
                "-o", "LogLevel=ERROR", "-o", "Compression=no",
                "-o", "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
                "chacha20-poly1305@openssh.com,aes128-ctr"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}",
                     "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity:
            argv += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        for opt in self.extra_options:
            argv += ["-o", opt]
        return [*argv, f"{user}@{host}", "--", remote]


@dataclass(frozen=True)
class SshSettings:
    """Everything needed to reach one host's agent over SSH.

    Tuning defaults follow the field notes: paramiko's defaults (2 MiB window,
    32 KiB packets, chacha/aes-ctr, small reads) give ~16 MB/s; AES-GCM, a
    large window and large reads give hundreds of MB/s.
    """

    host: str
    port: int = 22
    user: str = "root"
    # --- authentication (key file, ssh-agent, or a password *reference*) ---
    key_filename: str = ""
    key_passphrase_env: str = ""
    allow_agent: bool = True
    password_env: str = ""
    password_keyring: str = ""  #: "SERVICE" or "SERVICE/USER" in the OS keyring (see credentials)
    # --- host key policy ---
    known_hosts: str = ""  #: empty: ~/.ssh/known_hosts
    fingerprint: str = ""  #: pinned "SHA256:..." (as ssh-keygen -l prints); wins over known_hosts
    allow_unknown_host: bool = False  #: accept (never silently) a key not in known_hosts
    # --- remote side ---
    python: str = "python3"
    agent_dir: str = "/tmp"
    # --- timeouts ---
    connect_timeout: float = 15.0
    io_timeout: float = 120.0  #: no byte from the agent for this long = connection lost
    keepalive: float = 15.0
    # --- throughput ---
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS
    window_size: int = 64 * MiB
    max_packet_size: int = 256 * 1024  #: what we accept; the server announces its own
    read_size: int = 4 * MiB  #: one recv call asks for this much
    write_buffer: int = 4 * MiB
    rekey_bytes: int = RFC4344_AES_BYTES  #: rekey after this many bytes either way
    rekey_packets: int = RFC4344_PACKETS  #: ... or this many packets
    compress: str = ""  #: "", "zlib", "zstd" or "auto" (zstd where both sides have it)
    compress_level: int | None = None
    bwlimit: float = 0.0  #: bytes per second across this connection, 0 = no cap
    # --- data path ---
    mode: str = "relay"  #: relay | direct | auto (direct when preflight says it works)
    direct: DirectRoute = field(default_factory=DirectRoute)
    # --- faults ---
    retries: int = 3  #: reconnect attempts after a lost connection (0: fail at once)
    backoff: float = 1.0  #: first pause, doubled per attempt
    backoff_max: float = 15.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ParameterError("SSH settings need a host", parameter="host")
        if self.mode not in SSH_MODES:
            raise ParameterError(f"data path mode must be one of {', '.join(SSH_MODES)}, got {self.mode!r}",
                                 parameter="mode")
        if self.compress not in SSH_COMPRESS:
            raise ParameterError(
                f"compression must be one of {', '.join(c for c in SSH_COMPRESS if c)} or empty, "
                f"got {self.compress!r}",
                parameter="compress")
        if self.fingerprint and not self.fingerprint.startswith(("SHA256:", "MD5:")):
            raise ParameterError(
                f"ssh_fingerprint {self.fingerprint!r} is not a SHA256:... fingerprint",
                hint="copy it from `ssh-keygen -l -E sha256 -f <host key>.pub` on the host",
                parameter="ssh_fingerprint")
        if not (0 < self.rekey_bytes <= RFC4344_AES_BYTES and 0 < self.rekey_packets <= 2**32):
            raise ParameterError(
                f"rekey limits {self.rekey_bytes} bytes / {self.rekey_packets} packets are above "
                f"RFC 4344's bound for AES ({RFC4344_AES_BYTES} bytes, 2**32 packets) or not positive",
                parameter="rekey_bytes")
        if self.retries < 0 or self.backoff < 0:
            raise ParameterError("retries and backoff must not be negative", parameter="retries")

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def with_(self, **changes: Any) -> SshSettings:
        """A copy with some fields changed (settings are frozen)."""
        return replace(self, **changes)

    @classmethod
    def from_host_params(cls, hp: HostParams, **overrides: Any) -> SshSettings:
        """Settings for ``hp`` (``host`` may be ``user@host:port`` or ``ssh://...``)."""
        target = hp.url if hp.url.startswith("ssh://") else hp.host
        host, user, port = parse_target(target, hp.ssh_user, hp.ssh_port)
        values: dict[str, Any] = {
            "host": host, "port": port, "user": user,
            "key_filename": os.path.expanduser(hp.ssh_key) if hp.ssh_key else "",
            "known_hosts": os.path.expanduser(hp.ssh_known_hosts) if hp.ssh_known_hosts else "",
            "fingerprint": hp.ssh_fingerprint,
            # the SSH login's own references, never the API's (password_env)
            "password_env": hp.ssh_password_env,
            "password_keyring": hp.ssh_password_keyring,
            "allow_unknown_host": hp.allow_unknown_host_key,
            "mode": hp.ssh_mode,
            "compress": hp.ssh_compress,
            "bwlimit": float(hp.bwlimit),
            # paths on the source host, used there by OpenSSH: not expanded here
            "direct": DirectRoute(identity=hp.ssh_direct_key,
                                  known_hosts=hp.ssh_direct_known_hosts),
        }
        values.update(overrides)
        return cls(**values)


def parse_target(target: str, user: str = "root", port: int = 22) -> tuple[str, str, int]:
    """``ssh://user@host:port``, ``user@host:port``, ``[v6]:port`` or ``host`` -> parts."""
    t = target.strip()
    if t.startswith("ssh://"):
        t = t[len("ssh://"):].rstrip("/")
    if "@" in t:
        user, t = t.rsplit("@", 1)
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif t.count(":") == 1:
        host, p = t.split(":")
        port = int(p)
    else:
        host = t
    if not host:
        raise ParameterError(f"no host in {target!r}", parameter="host")
    return host, user, port


def resolve_password(s: SshSettings) -> str | None:
    """The password a reference points to, or None when no reference is set (key or
    agent only); read by :mod:`vmigrate_lib.credentials`, the same way as the API's."""
    return resolve_secret(SecretRef(
        purpose=f"the SSH login {s.address}", env=s.password_env, keyring=s.password_keyring,
        user=s.user, env_param="ssh_password_env", keyring_param="ssh_password_keyring"))
