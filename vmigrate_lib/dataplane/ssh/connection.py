"""One authenticated, tuned SSH connection: host key check, login, agent upload.

paramiko is slow with its defaults (~16 MB/s); this asks for AES-GCM, a 64 MiB
window, large packets and rekeying every 64 GiB (RFC 4344's bound for AES).  Host keys are checked
against known_hosts or a pinned SHA256 fingerprint; an unknown key is a
:class:`HostKeyError` unless ``allow_unknown_host`` is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import socket
import threading

from ...errors import AuthenticationError, HostKeyError, SshHostUnreachable, TransportError
from ...trust import TrustNotice, notify
from ..sshconfig import SshSettings, resolve_password
from ..transport import agent_zipapp
from . import agentfile
from .paramiko_lazy import paramiko

log = logging.getLogger("vmigrate.ssh")


#: (host, port) that accepted a TCP connection in this process.  A refusal from an
#: address never reached is bad input (:class:`SshHostUnreachable`, exit 2: preflight
#: is where every run first connects); from one reached before it is a fault during
#: work (:class:`TransportError`: reconnects, exit 1, a re-run resumes).
REACHED: set[tuple[str, int]] = set()


def fingerprint_sha256(key: paramiko.PKey) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -l -E sha256`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _fingerprint_md5(key: paramiko.PKey) -> str:
    h = hashlib.md5(key.asbytes()).hexdigest()
    return "MD5:" + ":".join(h[i : i + 2] for i in range(0, len(h), 2))



#: Datastores served over one shared connection at most (each keeps one agent channel
#: open, a control plane may add a few): below OpenSSH's ``MaxSessions`` default of 10
#: channels per connection (sshd_config(5)); more datastores on one host get another.
SHARED_USERS = 4

_POOL_LOCK = threading.Lock()
_POOL: dict[SshSettings, list[SshConnection]] = {}


def shared_connection(settings: SshSettings) -> SshConnection:
    """The connection of this process to the host ``settings`` reach (the same settings:
    the same host, login, host-key policy and tuning), shared by every datastore and
    agent on it: one handshake, one login and one host-key check per host and command
    instead of one per datastore.  Each user gives it back with
    :meth:`SshConnection.release`; the last one closes it."""
    with _POOL_LOCK:
        conns = _POOL.setdefault(settings, [])
        conn = next((c for c in conns if c.users < SHARED_USERS and not c.full), None)
        if conn is None:
            conn = SshConnection(settings)
            conn.pooled = True
            conns.append(conn)
        conn.users += 1
        return conn


class SshConnection:
    """One authenticated, tuned SSH connection to a host (reconnects on demand)."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self._t: paramiko.Transport | None = None
        self._lock = threading.Lock()
        self.agent_path: str | None = None
        self.agent_sha256 = ""
        self.host_key_fingerprint = ""
        self.connects = 0
        self.pooled = False  #: from :func:`shared_connection`
        self.users = 0  #: datastores using it (pooled only)
        self.full = False  #: sshd refused one more session on it: no new user joins
        #: auto mode: can this host start an agent on (host, port) itself; probed once for
        #: every datastore on this connection (preflight's answer serves the cycles)
        self.direct_ok: dict[tuple[str, int], bool] = {}

    def refused_session(self) -> SshConnection:
        """sshd refused one more session on this shared connection (its ``MaxSessions``):
        no new user joins it, the caller gives its use back and gets another shared
        connection to the same host (a new one when every other is full too)."""
        self.full = True
        self.release()
        return shared_connection(self.settings)

    def release(self) -> None:
        """A user is done with it: a shared connection closes when its last user is
        done (and leaves the pool), one of its own closes now."""
        with _POOL_LOCK:
            if self.pooled:
                self.users -= 1
                if self.users > 0:
                    return
                conns = _POOL.get(self.settings, [])
                if self in conns:
                    conns.remove(self)
                if not conns:
                    _POOL.pop(self.settings, None)
                self.pooled = False
        self.close()

    @property
    def active(self) -> bool:
        return self._t is not None and self._t.is_active()

    def transport(self) -> paramiko.Transport:
        """The live paramiko transport, connecting (again) if needed."""
        with self._lock:
            if self._t is None or not self._t.is_active():
                self._close_locked()
                self._t = self._connect()
                self.connects += 1
            return self._t

    def _connect(self) -> paramiko.Transport:
        s = self.settings
        try:
            sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout)
        except OSError as exc:
            why = f"cannot reach SSH on {s.host}:{s.port}: {exc.strerror or exc}"
            if (s.host, s.port) not in REACHED:
                # never answered in this process: bad input found before any change
                raise SshHostUnreachable(
                    why, hint="check the host address and port, that sshd runs there "
                    "and that no firewall blocks this machine",
                    host=s.host, port=s.port, errno=exc.errno,
                ) from exc
            raise TransportError(
                why, hint="the host answered before: check the network and sshd there, then "
                "re-run (it resumes)", host=s.host, port=s.port, errno=exc.errno,
            ) from exc
        REACHED.add((s.host, s.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = paramiko.Transport(
            sock, default_window_size=s.window_size, default_max_packet_size=s.max_packet_size
        )
        try:
            t.banner_timeout = s.connect_timeout
            t.handshake_timeout = s.connect_timeout
            t.auth_timeout = s.connect_timeout
            opts = t.get_security_options()
            available = set(opts.ciphers)
            preferred = [c for c in s.ciphers if c in available]
            opts.ciphers = tuple(preferred + [c for c in opts.ciphers if c not in preferred])
            known = self._known_key_types()
            if known and not s.fingerprint:
                kt = list(opts.key_types)
                opts.key_types = tuple([k for k in kt if k in known] + [k for k in kt if k not in known])
            t.packetizer.REKEY_BYTES = s.rekey_bytes
            t.packetizer.REKEY_PACKETS = s.rekey_packets
            t.start_client(timeout=s.connect_timeout)
            self._verify_host_key(t)
            self._authenticate(t)
            if s.keepalive:
                t.set_keepalive(int(s.keepalive))
        except paramiko.SSHException as exc:
            t.close()
            raise TransportError(
                f"SSH handshake with {s.host}:{s.port} failed: {exc}",
                host=s.host, port=s.port,
            ) from exc
        except (OSError, EOFError) as exc:
            t.close()
            raise TransportError(
                f"SSH connection to {s.host}:{s.port} broke during setup: {exc}",
                host=s.host, port=s.port,
            ) from exc
        except BaseException:
            t.close()
            raise
        return t

    def _known_hosts(self) -> paramiko.HostKeys:
        path = self.settings.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        hk = paramiko.HostKeys()
        if os.path.exists(path):
            try:
                hk.load(path)
            except (OSError, paramiko.SSHException) as exc:
                raise HostKeyError(f"cannot read known_hosts {path}: {exc}", path=path) from exc
        return hk

    def _lookup_name(self) -> str:
        s = self.settings
        return s.host if s.port == 22 else f"[{s.host}]:{s.port}"

    def _known_key_types(self) -> set[str]:
        try:
            entry = self._known_hosts().lookup(self._lookup_name())
        except HostKeyError:
            return set()
        return set(entry.keys()) if entry else set()

    def _verify_host_key(self, t: paramiko.Transport) -> None:
        s = self.settings
        key = t.get_remote_server_key()
        fp = fingerprint_sha256(key)
        self.host_key_fingerprint = fp
        if s.fingerprint:
            want = s.fingerprint.rstrip("=")
            got = fp if want.startswith("SHA256:") else _fingerprint_md5(key)
            if not hmac.compare_digest(got.encode(), want.encode()):
                raise HostKeyError(
                    f"host key of {s.host}:{s.port} is {key.get_name()} {fp}, "
                    f"not the pinned {s.fingerprint}: refusing to connect",
                    hint="if the host was reinstalled, verify its new key out of band and "
                    "update ssh_fingerprint; otherwise someone may be intercepting the connection",
                    host=s.host, port=s.port, fingerprint=fp,
                )
            return
        name = self._lookup_name()
        entry = self._known_hosts().lookup(name)
        known = entry.get(key.get_name()) if entry else None
        if known is None:
            if entry:
                detail = f"known_hosts lists {', '.join(entry.keys())} for {name}, the host offered {key.get_name()}"
            else:
                detail = f"{name} is not in {s.known_hosts or '~/.ssh/known_hosts'}"
            if s.allow_unknown_host:
                log.warning("accepting unknown host key %s %s of %s (allow_unknown_host)",
                            key.get_name(), fp, name)
                notify(TrustNotice("ssh_host_key", s.host, s.port, fp,
                                   "allow_unknown_host_key: true", f"{key.get_name()}; {detail}"))
                return
            raise HostKeyError(
                f"unknown host key for {name}: {key.get_name()} {fp} ({detail})",
                hint="check the fingerprint on the host (ssh-keygen -l -f /etc/ssh/ssh_host_*_key.pub), "
                "then add it to known_hosts or pin it with ssh_fingerprint",
                host=s.host, port=s.port, fingerprint=fp,
            )
        if known != key:
            raise HostKeyError(
                f"HOST KEY CHANGED for {name}: it offered {key.get_name()} {fp}, "
                f"known_hosts has {fingerprint_sha256(known)}: refusing to connect",
                hint="someone may be intercepting the connection, or the host was reinstalled; "
                "verify the new key out of band before replacing the known_hosts entry",
                host=s.host, port=s.port, fingerprint=fp,
            )

    def _authenticate(self, t: paramiko.Transport) -> None:
        s = self.settings
        tried: list[str] = []
        if s.key_filename:
            passphrase = os.environ.get(s.key_passphrase_env) if s.key_passphrase_env else None
            try:
                pkey = paramiko.PKey.from_path(s.key_filename, passphrase)
            except (OSError, paramiko.SSHException) as exc:
                raise AuthenticationError(
                    f"cannot load SSH key {s.key_filename}: {exc}",
                    hint="check ssh_key (and its passphrase reference)", host=s.host,
                ) from exc
            try:
                t.auth_publickey(s.user, pkey)
                return
            except paramiko.AuthenticationException:
                tried.append(f"key {s.key_filename}")
        if s.allow_agent:
            try:
                agent_keys = paramiko.Agent().get_keys()
            except paramiko.SSHException:
                agent_keys = ()
            for k in agent_keys:
                try:
                    t.auth_publickey(s.user, k)
                    return
                except paramiko.AuthenticationException:
                    continue
            if agent_keys:
                tried.append(f"{len(agent_keys)} ssh-agent key(s)")
        password = resolve_password(s)
        if password is not None:
            try:
                t.auth_password(s.user, password)
                return
            except paramiko.AuthenticationException:
                tried.append("password from " + (s.password_env or s.password_keyring))
        raise AuthenticationError(
            f"SSH login as {s.user} on {s.host}:{s.port} refused"
            + (f" (tried {', '.join(tried)})" if tried else " (no key, agent key or password reference)"),
            host=s.host, user=s.user,
        )

    # --- agent file ----------------------------------------------------------------
    def agent_target(self) -> str:
        """Where the agent file is when installed (nothing checked on the host): a start
        tries it first and installs only when the launcher says it is missing or wrong,
        which saves a python start and a round trip per connection."""
        if self.agent_path is not None:
            return self.agent_path
        data, digest16 = agent_zipapp()
        self.agent_sha256 = hashlib.sha256(data).hexdigest()
        return agentfile.agent_path(self.settings, digest16)

    def agent_ran(self) -> None:
        """An agent started from :meth:`agent_target` answered: the launcher found the
        file there with the right owner, mode and digest, so it is installed and a later
        :meth:`ensure_agent` (direct mode's peer command) needs no install check (an
        exec and a python3 start on the host)."""
        if self.agent_path is None:
            self.agent_path = self.agent_target()

    def ensure_agent(self) -> str:
        """Install the agent in the login's private folder (see :mod:`.agentfile`) unless
        the same bytes are there; the path, whose digest every start checks again."""
        if self.agent_path is not None:
            return self.agent_path
        data, digest16 = agent_zipapp()
        path = agentfile.agent_path(self.settings, digest16)
        done = agentfile.install(self.transport(), self.settings, path, data)
        if done == "replaced":
            log.warning("the agent file %s on %s did not match its digest: replaced",
                        path, self.settings.host)
        self.agent_sha256 = hashlib.sha256(data).hexdigest()
        self.agent_path = path
        return path

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        t, self._t = self._t, None
        if t is not None:
            t.close()

