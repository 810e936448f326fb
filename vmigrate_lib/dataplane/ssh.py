"""The agent over SSH (paramiko): a tuned transport and a resilient datastore client.

:class:`SshTransport` uploads the agent zipapp to the host (SFTP, else ``cat >``)
under a content-addressed name and runs it with the host's python3 on an exec
channel.  paramiko is slow with its defaults (~16 MB/s); this module asks for
AES-GCM, a 64 MiB window, large packets, rekeying only after 1 TiB, and reads
in 4 MiB calls through a buffered wrapper.

Host keys are checked against known_hosts or a pinned SHA256 fingerprint; an
unknown key is a :class:`HostKeyError` unless ``allow_unknown_host`` is set.

:class:`SshAgentDatastore` adds what a long transfer over a network needs:

* compression (zstd or zlib, negotiated in HELLO; the agent needs only zlib);
* bounded reconnects with backoff: a read stream resumes after the last chunk
  it yielded (the source is a frozen snapshot, so re-reading is exact); a write
  stream keeps the chunks sent since the last acknowledged checkpoint and
  replays them after reconnecting (writes are positional, so replaying is
  idempotent) - nothing is written wrong, nothing acknowledged is lost;
* **direct mode** (:meth:`SshAgentDatastore.push_extents`): the source agent
  starts the destination agent itself with OpenSSH and streams to it; this
  machine only steers and receives checkpoint acknowledgements.

The engine never imports this module; hosts build datastores through
:func:`vmigrate_lib.dataplane.open_ssh_datastore`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import os
import posixpath
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import paramiko

from ..errors import AgentError, AuthenticationError, HostKeyError, NoSpaceLeft, TransportError
from ..extents import Extent, clip
from .agent import protocol as proto
from .client import AgentDatastore
from .datastore import BlockDigest, Chunk, Datastore, ExtentWriter
from .sshconfig import SshSettings, resolve_password
from .transport import Transport, agent_zipapp

log = logging.getLogger("vmigrate.ssh")

T = TypeVar("T")

#: Operations safe to repeat after a lost connection (no effect, or the same effect).
IDEMPOTENT_OPS = frozenset(
    {"ping", "statfs", "stat", "listdir", "makedirs", "read_file", "allocated", "remove",
     "probe_peer"}
)


def fingerprint_sha256(key: paramiko.PKey) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -l -E sha256`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _fingerprint_md5(key: paramiko.PKey) -> str:
    h = hashlib.md5(key.asbytes()).hexdigest()
    return "MD5:" + ":".join(h[i : i + 2] for i in range(0, len(h), 2))


# --------------------------------------------------------------------------- bandwidth


class RateLimiter:
    """Token bucket shared by a connection's reader and writer (bytes per second).

    Idle time earns at most ``burst`` seconds of credit, so a cap holds over
    any window longer than that.
    """

    def __init__(self, rate: float, burst: float = 0.25) -> None:
        self.rate = float(rate)
        self.burst = self.rate * burst
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._tokens = 0.0

    def consume(self, n: int) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - n
            self._last = now
            debt = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if debt > 0:
            time.sleep(debt)


# --------------------------------------------------------------------------- channel I/O


class _ChannelReader(io.RawIOBase):
    """Raw reads from an exec channel in large calls (buffered above by BufferedReader)."""

    def __init__(self, chan: paramiko.Channel, read_size: int, limiter: RateLimiter | None) -> None:
        super().__init__()
        self.chan = chan
        self.read_size = read_size
        self.limiter = limiter

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.chan.recv(min(len(buf), self.read_size))
        n = len(data)
        buf[:n] = data
        if self.limiter is not None:
            self.limiter.consume(n)
        return n


class _ChannelWriter(io.RawIOBase):
    """Raw writes to an exec channel (buffered above by BufferedWriter)."""

    def __init__(self, chan: paramiko.Channel, limiter: RateLimiter | None) -> None:
        super().__init__()
        self.chan = chan
        self.limiter = limiter

    def writable(self) -> bool:
        return True

    def write(self, buf: Any) -> int:
        # paramiko's sendall() re-slices the remaining bytes after every packet
        # (quadratic copying for large buffers): hand it one packet at a time.
        n = len(buf)
        if self.limiter is not None:
            self.limiter.consume(n)
        view = memoryview(buf).cast("B")
        step = max(self.chan.out_max_packet_size - 64, 4096)
        send = self.chan.send
        pos = 0
        while pos < n:
            sent = send(view[pos : pos + step].tobytes())
            if sent == 0:
                raise OSError("SSH channel closed")
            pos += sent
        return n


# --------------------------------------------------------------------------- connection


class SshConnection:
    """One authenticated, tuned SSH connection to a host (reconnects on demand)."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self._t: paramiko.Transport | None = None
        self._lock = threading.Lock()
        self.agent_path: str | None = None
        self.host_key_fingerprint = ""
        self.connects = 0

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
            raise TransportError(
                f"cannot reach SSH on {s.host}:{s.port}: {exc.strerror or exc}",
                hint="check the host address and port, and that sshd runs there",
                host=s.host, port=s.port,
            ) from exc
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
            t.packetizer.REKEY_PACKETS = s.rekey_bytes
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
    def ensure_agent(self) -> str:
        """Upload the agent zipapp (content-addressed, atomically) unless already there."""
        if self.agent_path is not None:
            return self.agent_path
        data, digest = agent_zipapp()
        path = posixpath.join(self.settings.agent_dir, f"vmigrate-agent-{digest}.pyz")
        t = self.transport()
        try:
            self._upload_sftp(t, path, data)
        except (OSError, paramiko.SSHException) as exc:
            log.info("SFTP upload to %s failed (%s); using cat", self.settings.host, exc)
            self._upload_cat(t, path, data)
        self.agent_path = path
        return path

    def _upload_sftp(self, t: paramiko.Transport, path: str, data: bytes) -> None:
        sftp = paramiko.SFTPClient.from_transport(t)
        if sftp is None:
            raise paramiko.SSHException("no SFTP subsystem")
        try:
            try:
                if sftp.stat(path).st_size == len(data):
                    return  # content-addressed name, written by rename: it is complete
            except OSError:
                pass
            tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
            with sftp.open(tmp, "wb") as f:
                f.write(data)
            sftp.posix_rename(tmp, path)
        finally:
            sftp.close()

    def _upload_cat(self, t: paramiko.Transport, path: str, data: bytes) -> None:
        import shlex

        tmp = f"{path}.tmp-{os.getpid()}"
        chan = t.open_session()
        try:
            chan.settimeout(self.settings.connect_timeout * 4)
            chan.exec_command(f"cat > {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(path)}")
            chan.sendall(data)
            chan.shutdown_write()
            rc = chan.recv_exit_status()
            err = chan.recv_stderr(4096).decode("utf-8", "replace").strip()
        except (OSError, paramiko.SSHException) as exc:
            raise TransportError(
                f"cannot upload the agent to {self.settings.host}: {exc}", host=self.settings.host
            ) from exc
        finally:
            chan.close()
        if rc != 0:
            raise TransportError(
                f"cannot upload the agent to {self.settings.host}:{path}: {err or f'exit {rc}'}",
                hint=f"check that {self.settings.agent_dir} on the host is writable",
                host=self.settings.host,
            )

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        t, self._t = self._t, None
        if t is not None:
            t.close()


# --------------------------------------------------------------------------- transport


class SshTransport(Transport):
    """The agent on a remote datastore folder, on an exec channel of a tuned SSH connection."""

    def __init__(self, settings: SshSettings, root: str, connection: SshConnection | None = None) -> None:
        self.settings = settings
        self.root = root
        self.conn = connection or SshConnection(settings)
        self.description = f"ssh agent on {settings.address}:{root}"
        self.limiter = RateLimiter(settings.bwlimit) if settings.bwlimit > 0 else None
        self._chan: paramiko.Channel | None = None
        self._stderr = bytearray()
        self.starts = 0
        self.last_exit: int | None = None  #: exit status of the last agent that ended

    def remote_command(self) -> str:
        """The command that starts this datastore's agent on its host."""
        return self.settings.agent_command(self.conn.ensure_agent(), self.root)

    def start(self) -> tuple[IO[bytes], IO[bytes]]:
        self.close()
        s = self.settings
        try:
            cmd = self.remote_command()
            t = self.conn.transport()
            chan = t.open_session(window_size=s.window_size, max_packet_size=s.max_packet_size)
            chan.settimeout(s.io_timeout)
            chan.exec_command(cmd)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.conn.close()  # a half-dead connection: the next start reconnects
            raise TransportError(
                f"cannot start the agent on {s.address}: {exc}", host=s.host, root=self.root
            ) from exc
        self._chan = chan
        self._stderr = bytearray()
        self.last_exit = None
        self.starts += 1
        reader = io.BufferedReader(_ChannelReader(chan, s.read_size, self.limiter), buffer_size=s.read_size)
        writer = io.BufferedWriter(_ChannelWriter(chan, self.limiter), buffer_size=s.write_buffer)
        return reader, writer

    def _drain_stderr(self) -> None:
        chan = self._chan
        if chan is None:
            return
        try:
            while chan.recv_stderr_ready():
                self._stderr += chan.recv_stderr(65536)
        except (OSError, paramiko.SSHException):
            pass

    def diagnostics(self) -> str:
        """Why the agent went away: its exit status, stderr, or the connection's state."""
        chan = self._chan
        if chan is None:
            return ""
        deadline = time.monotonic() + 1.0
        while not chan.exit_status_ready() and chan.get_transport() is not None \
                and chan.get_transport().is_active() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._drain_stderr()
        parts: list[str] = []
        if not self.conn.active:
            parts.append(f"the SSH connection to {self.settings.address} dropped")
        elif chan.exit_status_ready():
            rc = self.last_exit = chan.recv_exit_status()
            if rc == -1:
                parts.append("the agent was killed (no exit status: a signal)")
            else:
                parts.append(f"the agent exited with status {rc}")
        err = self._stderr.decode("utf-8", "replace").strip()
        if err:
            parts.append(f"agent stderr: {err[-1500:]}")
        return "; ".join(parts)

    def close(self) -> None:
        chan, self._chan = self._chan, None
        if chan is not None:
            try:
                chan.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass

    def shutdown(self) -> None:
        """Close the channel and the SSH connection."""
        self.close()
        self.conn.close()


# --------------------------------------------------------------------------- datastore


def _remaining(extents: list[Extent], k: int, offset: int, end: int) -> tuple[list[Extent], int]:
    """Cut what a stream has delivered ([offset, end) of the extent at or after k) off the list."""
    while k < len(extents) and not (extents[k].start <= offset < extents[k].start + extents[k].length):
        k += 1
    if k == len(extents):
        return extents, k
    e = extents[k]
    e_end = e.start + e.length
    if end >= e_end:
        return extents, k + 1
    extents[k] = Extent(end, e_end - end)
    return extents, k


_END = object()


def _prefetch(gen: Iterator[Chunk], limit: int) -> Iterator[Chunk]:
    """Run ``gen`` in a thread, up to ``limit`` bytes ahead of the consumer.

    In relay mode this overlaps receiving from the source with sending to the
    destination (socket waits and crypto release the GIL).  Exceptions travel
    to the consumer; closing the consumer stops the thread.
    """
    if limit <= 0:
        yield from gen
        return
    import queue

    q: queue.Queue[Any] = queue.Queue()
    room = threading.Semaphore(max(2, limit // (1 << 20)))
    stop = threading.Event()

    def run() -> None:
        try:
            for c in gen:
                while not room.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                q.put(c)
            q.put(_END)
        except BaseException as exc:
            q.put(exc)
        finally:
            if stop.is_set():
                close = getattr(gen, "close", None)
                if close is not None:
                    close()

    t = threading.Thread(target=run, name="vmigrate-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            room.release()
            yield item
    finally:
        stop.set()
        t.join()


class SshAgentDatastore(AgentDatastore):
    """An :class:`AgentDatastore` over SSH with compression, reconnects and direct mode."""

    transport: SshTransport
    prefetch_bytes = 32 * 1024 * 1024  #: read-ahead of a read stream (0: none)

    def __init__(self, name: str, transport: SshTransport) -> None:
        super().__init__(name, transport)
        self.settings = transport.settings
        self.reconnects = 0
        self.codec: str | None = None
        self.events: list[dict[str, Any]] = []  #: reconnects and resumes, for the journal

    # --- connection and framing ----------------------------------------------------
    def _connect(self) -> tuple[IO[bytes], IO[bytes]]:
        fresh = self._r is None or self._busy
        try:
            r, w = super()._connect()
        except TransportError as exc:
            if self.transport.last_exit not in (None, -1):
                # the agent ran and refused to serve (bad root, old python): not a
                # network fault, so no reconnect would help
                raise AgentError(
                    f"the agent on {self.settings.host} could not start: {exc.message}",
                    hint="check the datastore folder and python3 on the host",
                    datastore=self.name, host=self.settings.host,
                ) from exc
            raise
        if fresh:
            offered = self.hello.get("compression", [])
            want = self.settings.compress
            if want == "auto":
                self.codec = "zstd" if "zstd" in offered and "zstd" in proto.CODECS else (
                    "zlib" if "zlib" in offered else None)
            elif want and want in offered and want in proto.CODECS:
                self.codec = want
            else:
                self.codec = None
        return r, w

    def _recv(self) -> tuple[int, bytes, int]:
        assert self._r is not None
        try:
            ftype, flags, arg, payload, _raw = proto.read_frame(self._r)
        except (EOFError, OSError, ValueError) as exc:
            raise self._lost(exc) from exc
        except proto.ProtocolError as exc:
            self._disconnect()
            raise AgentError(f"agent protocol error: {exc}", datastore=self.name) from exc
        if flags:
            try:
                payload = proto.decode_payload(flags, payload)
            except proto.ProtocolError as exc:
                self._disconnect()
                raise AgentError(f"agent protocol error: {exc}", datastore=self.name) from exc
        return ftype, payload, arg

    def _stream(self, request: dict[str, Any]) -> Iterator[tuple[int, bytes, int]]:
        if request.get("op") == "read":
            self._connect()
            if self.codec:
                request = {**request, "compress": self.codec}
                if self.settings.compress_level is not None:
                    request["level"] = self.settings.compress_level
        return super()._stream(request)

    def _pause(self, attempt: int, exc: BaseException, what: str) -> None:
        """Back off before reconnect ``attempt`` (1-based), or give up past the limit."""
        s = self.settings
        if attempt > s.retries:
            if s.retries:
                raise TransportError(
                    f"{what} on datastore {self.name}: gave up after {s.retries} reconnects ({exc})",
                    datastore=self.name, transport=self.transport.description,
                ) from exc
            raise exc
        pause = min(s.backoff * 2 ** (attempt - 1), s.backoff_max)
        self.reconnects += 1
        self.events.append({"event": "reconnect", "what": what, "attempt": attempt,
                            "pause": pause, "error": str(exc), "at": time.time()})
        log.warning("%s on %s: %s; reconnect %d/%d in %.1f s", what, self.name, exc, attempt,
                    s.retries, pause)
        time.sleep(pause)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return super().call(op, **args)
            except TransportError as exc:
                if op not in IDEMPOTENT_OPS and not (op == "write_file" and not args.get("exclusive")):
                    raise
                attempt += 1
                self._pause(attempt, exc, f"{op} lost its connection")

    def close(self) -> None:
        try:
            super().close()
        except (OSError, ValueError, AgentError):
            pass  # the agent or the connection is already gone: nothing to say goodbye to
        finally:
            self._disconnect()
            self.transport.shutdown()

    # --- resumable streams ------------------------------------------------------------
    def read_extents(self, path: str, extents: Iterable[Extent]) -> Iterator[Chunk]:
        """Read stream that resumes after its last delivered chunk when the connection breaks."""
        remaining = [Extent(e.start, e.length) for e in extents]
        k = 0
        summary = {"sent": 0, "holes": 0, "read": 0}
        attempt = 0
        while True:
            got = {"sent": 0, "holes": 0}
            try:
                for chunk in _prefetch(super().read_extents(path, remaining[k:]), self.prefetch_bytes):
                    yield chunk
                    got["holes" if chunk.data is None else "sent"] += chunk.length
                    remaining, k = _remaining(remaining, k, chunk.offset, chunk.offset + chunk.length)
                    attempt = 0
                for key in summary:
                    summary[key] += int(self.last_summary.get(key, 0))
                self.last_summary = summary
                return
            except TransportError as exc:
                summary["sent"] += got["sent"]
                summary["holes"] += got["holes"]
                summary["read"] += got["sent"]
                attempt += 1
                self._pause(attempt, exc, "read stream lost its connection")
                self.events.append({"event": "resume", "what": "read", "path": path,
                                    "extents_left": len(remaining) - k})

    def hash_blocks(
        self, path: str, block_size: int, algorithm: str, extents: Iterable[Extent] | None = None
    ) -> Iterator[BlockDigest]:
        """Hash stream that resumes after its last delivered block when the connection breaks."""
        if extents is None:
            st = self.stat(path)
            remaining = [Extent(0, st.size)] if st is not None else []
            if st is None:  # let the agent report the missing file
                yield from super().hash_blocks(path, block_size, algorithm, None)
                return
        else:
            remaining = [Extent(e.start, e.length) for e in extents]
        k = 0
        attempt = 0
        while True:
            try:
                for d in super().hash_blocks(path, block_size, algorithm, remaining[k:]):
                    yield d
                    remaining, k = _remaining(remaining, k, d.offset, d.offset + d.length)
                    attempt = 0
                return
            except TransportError as exc:
                attempt += 1
                self._pause(attempt, exc, "hash stream lost its connection")

    def open_writer(self, path: str) -> ExtentWriter:
        return ResilientWriter(self, path)

    # --- direct mode -----------------------------------------------------------------
    def direct_argv(self, dst: SshAgentDatastore) -> list[str]:
        """The command the source host runs to start ``dst``'s agent (OpenSSH client)."""
        d = dst.settings
        return self.settings.direct.argv(d.host, d.port, d.user, dst.transport.remote_command())

    def probe_direct(self, dst: Datastore) -> tuple[bool, str]:
        """Can this host reach ``dst``'s host over SSH and start its agent there?"""
        if not isinstance(dst, SshAgentDatastore):
            return False, "the destination is not reached over SSH"
        try:
            r = self.call("probe_peer", argv=self.direct_argv(dst))
        except AgentError as exc:
            return False, f"source agent cannot probe: {exc.message}"
        if r.get("ok"):
            return True, f"{self.settings.host} reaches {dst.settings.address} (python {r['peer'].get('python')})"
        return False, f"{self.settings.host} cannot start an agent on {dst.settings.address}: {r.get('message')}"

    def use_direct(self, dst: Datastore) -> bool:
        mode = self.settings.mode
        if mode == "relay" or not isinstance(dst, SshAgentDatastore):
            return False
        if mode == "direct":
            return True
        key = (dst.settings.host, dst.settings.port)
        cache: dict[tuple[str, int], bool] = self.__dict__.setdefault("_direct_ok", {})
        if key not in cache:
            ok, why = self.probe_direct(dst)
            cache[key] = ok
            self.events.append({"event": "mode", "mode": "direct" if ok else "relay", "why": why})
        return cache[key]

    def push_extents(
        self,
        src_path: str,
        dst: Datastore,
        dst_path: str,
        extents: Sequence[Extent],
        *,
        checkpoint_bytes: int = 64 * 1024 * 1024,
        on_checkpoint: Callable[[int], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, int] | None:
        """Direct mode: the source agent streams to the destination's agent itself.

        Returns None when direct mode is not in use for this pair (the caller
        relays); else the summary ``{"sent", "holes", "read", "wire"}``.  The
        extents must be sorted and disjoint (as the copier passes them).  A
        broken push resumes from the last offset the destination acknowledged.
        """
        if not self.use_direct(dst):
            return None
        assert isinstance(dst, SshAgentDatastore)
        planned = sum(e.length for e in extents)
        remaining = list(extents)
        summary = {"sent": 0, "holes": 0, "read": 0, "wire": 0}
        acked = 0
        done_before = 0
        attempt = 0
        while True:
            req: dict[str, Any] = {
                "op": "push", "path": src_path, "dest_path": dst_path,
                "extents": [[e.start, e.length] for e in remaining],
                "argv": self.direct_argv(dst),
                # like the relay copier: checkpoints only when someone records them
                "checkpoint": checkpoint_bytes if on_checkpoint is not None else 2**62,
            }
            if self.settings.compress:
                req["compress"] = (
                    "zlib" if self.settings.compress == "auto" else self.settings.compress)
            if self.settings.bwlimit:
                req["bwlimit"] = self.settings.bwlimit
            try:
                for ftype, _payload, arg in self._stream(req):
                    if ftype != proto.ACK:
                        raise AgentError(f"unexpected frame {ftype} in push stream", datastore=self.name)
                    acked = arg
                    attempt = 0
                    if on_checkpoint is not None:
                        on_checkpoint(arg)
                    if on_progress is not None:
                        on_progress(done_before + sum(e.length for e in clip(remaining, 0, arg)), planned)
                for key in summary:
                    summary[key] += int(self.last_summary.get(key, 0))
                return summary
            except AgentError as exc:
                # the controller lost A, or A lost B (its ssh died): both resume from
                # the last acknowledged offset; a full disk or a refused path do not
                retryable = isinstance(exc, TransportError) or (
                    bool(exc.fields.get("agent_peer")) and not isinstance(exc, NoSpaceLeft)
                    and exc.fields.get("agent_errname") in (None, "", "EPIPE", "ECONNRESET"))
                if not retryable:
                    raise
                if exc.fields.get("agent_acked_offset"):
                    acked = max(acked, int(exc.fields["agent_acked_offset"]))
                done = sum(e.length for e in clip(remaining, 0, acked))
                done_before += done
                remaining = clip(remaining, acked, 2**63)
                attempt += 1
                self._pause(attempt, exc, "direct push lost a connection")
                self.events.append({"event": "resume", "what": "push", "path": src_path,
                                    "from_offset": acked})


class ResilientWriter(ExtentWriter):
    """A write stream that survives a lost connection by replaying unacknowledged chunks.

    Chunks sent since the last acknowledged checkpoint are kept (at most
    ``replay_limit`` bytes: beyond that the writer checkpoints by itself).  After
    a reconnect the write stream is reopened and those chunks are written again
    at their offsets; what was acknowledged before is durable and not resent.
    """

    def __init__(self, ds: SshAgentDatastore, path: str, replay_limit: int = 64 * 1024 * 1024) -> None:
        self.ds = ds
        self.path = path
        self.replay_limit = replay_limit
        self.pending: list[Chunk] = []
        self.pending_bytes = 0
        self.acked_base = 0  #: bytes acknowledged by streams before the current one
        self.closed = False
        self.failures = 0
        self._open()

    def _open(self) -> None:
        AgentDatastore.call(self.ds, "write", path=self.path)  # no blind retry: we replay
        self.ds._busy = True

    def _send(self, chunk: Chunk) -> None:
        ds = self.ds
        if chunk.data is None:
            ds._send(proto.HOLE, proto.LENGTH.pack(chunk.length), chunk.offset)
            return
        data, flags = chunk.data, 0
        if ds.codec:
            comp = self.__dict__.get("_comp")
            if comp is None:
                comp = self.__dict__["_comp"] = proto.Compressor(ds.codec, ds.settings.compress_level)
            data, flags = comp.pack(data)
        assert ds._w is not None
        try:
            ds._w.write(proto.pack_frame(proto.DATA, data, chunk.offset, flags))
            ds._w.write(data)
        except (OSError, ValueError) as exc:
            raise ds._lost(exc) from exc

    def _recover(self, exc: TransportError) -> None:
        """Reconnect (bounded, with backoff) and replay the unacknowledged chunks."""
        last: BaseException = exc
        while True:
            self.failures += 1
            try:
                self.ds._pause(self.failures, last, "write stream lost its connection")
            except BaseException:
                self.closed = True
                raise
            try:
                self._open()
                for c in self.pending:
                    self._send(c)
                self.ds.events.append({"event": "resume", "what": "write", "path": self.path,
                                       "replayed_bytes": self.pending_bytes})
                return
            except TransportError as again:
                last = again

    def write(self, chunk: Chunk) -> None:
        self.pending.append(chunk)
        self.pending_bytes += chunk.length if chunk.data is not None else 0
        try:
            self._send(chunk)
        except TransportError as exc:
            self._recover(exc)  # the replay includes this chunk
        if self.pending_bytes >= self.replay_limit:
            self.checkpoint()

    def _sync(self, ftype: int) -> int:
        while True:
            try:
                self.ds._send(ftype)
                self.ds._flush()
                rtype, payload, arg = self.ds._recv()
            except TransportError as exc:
                self._recover(exc)
                continue
            if rtype == proto.ERR:
                self.closed = True
                err = self.ds._error(payload, op="write", path=self.path)
                self.ds._disconnect()
                raise err
            if ftype == proto.FLUSH and rtype == proto.ACK:
                acked = arg
            elif ftype == proto.END and rtype == proto.END:
                acked = int(json.loads(payload)["acked"])
            else:
                self.ds._disconnect()
                raise AgentError(f"unexpected frame {rtype} in write stream", datastore=self.ds.name)
            self.pending.clear()
            self.pending_bytes = 0
            self.failures = 0
            return self.acked_base + acked

    def checkpoint(self) -> int:
        return self._sync(proto.FLUSH)

    def close(self) -> int:
        if self.closed:
            return 0
        acked = self._sync(proto.END)
        self.closed = True
        self.ds._busy = False
        return acked

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.ds._disconnect()


# --------------------------------------------------------------------------- preflight


@dataclass
class ModeCheck:
    mode: str
    ok: bool
    detail: str


def check_modes(src: Datastore, dst: Datastore) -> list[ModeCheck]:
    """Which data paths work between two datastores (changes nothing)."""
    out: list[ModeCheck] = []
    try:
        src.free_space()
        dst.free_space()
        out.append(ModeCheck("relay", True, f"this machine reaches {src.name} and {dst.name}"))
    except AgentError as exc:
        out.append(ModeCheck("relay", False, exc.one_line()))
    if isinstance(src, SshAgentDatastore):
        ok, why = src.probe_direct(dst)
        out.append(ModeCheck("direct", ok, why))
    else:
        out.append(ModeCheck("direct", False, "the source is not reached over SSH"))
    return out


def open_ssh_datastore(name: str, root: str, settings: SshSettings,
                       connection: SshConnection | None = None) -> SshAgentDatastore:
    """A datastore folder ``root`` on an SSH host, served by an uploaded agent."""
    return SshAgentDatastore(name, SshTransport(settings, root, connection))
