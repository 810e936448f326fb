"""One SSH host a keeper holds: its logins, its spare agents, the folders it may serve.

The keeper logs in with the data plane's own :class:`SshConnection` (the same host-key
check and credential handling as a command: a password is resolved from its reference
when a login needs it, held by paramiko for that login only, never written), installs
the agent file once, and keeps ``spares`` agents started per datastore folder, so that
a command's request is answered with an agent that already runs.  Each agent is the
launcher's command line built here (:func:`launch_command`: the checked agent file on
one folder), never anything a client sent.  sshd may allow few sessions per connection
(``MaxSessions``: 10 by default in sshd_config(5), 1 on an ESXi host hardened by the DISA
STIG, ESXI-67-000028): a refused session opens another login, up to :data:`MAX_LOGINS`.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from dataclasses import dataclass, field

from ...errors import KeeperError
from ..ssh.agentfile import launch_command
from ..ssh.connection import SshConnection
from ..ssh.paramiko_lazy import paramiko
from ..sshconfig import SshSettings

log = logging.getLogger("vmigrate.keep")

#: logins per host at most (sshd's MaxSessions 1 makes one per agent)
MAX_LOGINS = 8


def root_allowed(prefix: str, root: str) -> bool:
    """``root`` is one datastore folder right under ``prefix`` (normalized, no ``..``)."""
    return (posixpath.isabs(root) and posixpath.normpath(root) == root
            and posixpath.dirname(root) == prefix
            and posixpath.basename(root) not in ("", ".", ".."))


@dataclass
class HostHold:
    """The logins to one host and the agents started ahead on it."""

    settings: SshSettings
    prefix: str  #: datastore folders served are the children of this folder
    digest: str
    spares: int = 1
    conns: list[SshConnection] = field(default_factory=list)
    ready: dict[str, list[paramiko.Channel]] = field(default_factory=dict)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login(self) -> None:
        """The first login and the agent file, checked (installed when missing)."""
        conn = SshConnection(self.settings)
        conn.ensure_agent()
        self.conns.append(conn)

    def open_agent(self, root: str) -> paramiko.Channel:
        """An agent on ``root``: a spare already running, else one started now; the spares
        are refilled in the background."""
        if not root_allowed(self.prefix, root):
            raise KeeperError(f"{root!r} is not a datastore folder under {self.prefix}",
                              root=root)
        chan = None
        with self.lock:
            pool = self.ready.setdefault(root, [])
            while pool and chan is None:
                c = pool.pop(0)
                if c.closed or c.exit_status_ready() or not c.get_transport().is_active():
                    c.close()
                    continue
                chan = c
            self.served += 1
        if chan is None:
            chan = self.start(root)
        threading.Thread(target=self.refill, args=(root,), daemon=True,
                         name="vmigrate-keep-spare").start()
        return chan

    def refill(self, root: str) -> None:
        """Start spares on ``root`` until there are :attr:`spares` (errors logged)."""
        while True:
            with self.lock:
                if len(self.ready.setdefault(root, [])) >= self.spares:
                    return
            try:
                chan = self.start(root)
            except KeeperError as exc:
                log.warning("spare agent on %s:%s not started: %s", self.settings.host,
                            root, exc.one_line())
                return
            with self.lock:
                self.ready.setdefault(root, []).append(chan)

    def start(self, root: str) -> paramiko.Channel:
        """A new agent on ``root`` on one of the logins (another login when sshd refuses
        one more session on each)."""
        s = self.settings
        first = self.conns[0]
        cmd = launch_command(s, first.ensure_agent(), first.agent_sha256, root)
        for i in range(MAX_LOGINS):
            with self.lock:
                if i >= len(self.conns):
                    conn = SshConnection(s)
                    conn.agent_path, conn.agent_sha256 = first.agent_path, first.agent_sha256
                    self.conns.append(conn)
                conn = self.conns[i]
            try:
                chan = conn.transport().open_session(window_size=s.window_size,
                                                     max_packet_size=s.max_packet_size)
            except paramiko.ChannelException:
                continue  # MaxSessions on this login: the next one
            except (OSError, EOFError, paramiko.SSHException) as exc:
                conn.close()
                raise KeeperError(f"cannot open a channel to {s.address}: {exc}",
                                  host=s.host) from exc
            try:
                chan.exec_command(cmd)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                chan.close()
                raise KeeperError(f"cannot start the agent on {s.address}: {exc}",
                                  host=s.host) from exc
            return chan
        raise KeeperError(f"{s.address} refused a session on {MAX_LOGINS} logins",
                          host=s.host)

    def status(self) -> dict[str, object]:
        s = self.settings
        with self.lock:
            spares = sum(len(v) for v in self.ready.values())
            return {"host": s.host, "port": s.port, "user": s.user, "digest": self.digest,
                    "logins": sum(1 for c in self.conns if c.active), "spares": spares,
                    "served": self.served, "folders": sorted(self.ready)}

    def close(self) -> None:
        with self.lock:
            chans = [c for pool in self.ready.values() for c in pool]
            self.ready.clear()
        for c in chans:
            c.close()
        for conn in self.conns:
            conn.close()
