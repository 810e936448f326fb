"""A command's side: its agents through a live keeper instead of its own logins.

:func:`open_kept` is asked first by :func:`vmigrate_lib.dataplane.open_ssh_datastore`:
when this user's keeper folder has a socket for exactly these settings (:mod:`.place`),
the datastore's agent comes from the keeper (a spare already running) and the command
neither logs in nor starts an agent.  No keeper there: nothing is said, the command
connects as always.  A keeper for other settings of that host, one gone (its socket
left, nobody answering) or refusing: one ``vmigrate: warning:`` line saying why, then
the command connects directly.  A keeper that goes away mid-command is a dropped
connection: the datastore's bounded reconnects ask the keeper again, then fail as a
lost SSH connection does (exit 1; a re-run resumes).
"""

from __future__ import annotations

import io
import logging
import socket
from pathlib import Path
from typing import IO, Any

from ...errors import KeeperError, TransportError, VmigrateError
from ...trust import TrustNotice, notify
from ..ssh import SshAgentDatastore, SshTransport
from ..sshconfig import SshSettings
from . import wire
from .place import Found, find, settings_digest

log = logging.getLogger("vmigrate.keep")


class KeptTransport(SshTransport):
    """The agent on ``root`` through the keeper listening on ``path``."""

    def __init__(self, settings: SshSettings, root: str, path: Path) -> None:
        super().__init__(settings, root)  # its own connection object, never connected
        self.path = path
        self.digest = settings_digest(settings)
        self.description = f"ssh agent on {settings.address}:{root} (kept)"
        self._sock: socket.socket | None = None
        self._why = ""

    def request(self) -> socket.socket:
        """A socket on which the keeper answered ``ok`` to an agent request."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.settings.connect_timeout)
        try:
            s.connect(str(self.path))
            wire.send_line(s, {"op": "agent", "digest": self.digest, "root": self.root})
            answer = wire.recv_line(s)
        except (OSError, ValueError) as exc:
            s.close()
            raise TransportError(f"the keeper for {self.settings.address} did not answer: "
                                 f"{exc}", host=self.settings.host, root=self.root) from exc
        if answer.get("ok") is not True:
            s.close()
            raise KeeperError(f"the keeper for {self.settings.address} refused: "
                              f"{answer.get('error', answer)}", host=self.settings.host)
        for rec in answer.get("trust", []):  # the keeper's login accepted it unverified
            notify(TrustNotice(**rec))
        s.settimeout(self.settings.io_timeout)
        return s

    def start(self) -> tuple[IO[bytes], IO[bytes]]:
        ahead, self._ahead = self._ahead, None
        if isinstance(ahead, VmigrateError):
            raise ahead
        if ahead is not None and self._sock is not None:
            return ahead
        self.close()
        try:
            sock = self.request()
        except KeeperError as exc:
            raise TransportError(exc.message, host=self.settings.host, root=self.root) from exc
        self._sock = sock
        self.starts += 1
        s = self.settings
        reader = io.BufferedReader(SocketReader(sock), buffer_size=s.read_size)
        writer = io.BufferedWriter(SocketWriter(sock), buffer_size=s.write_buffer)
        return reader, writer

    def launch_now(self) -> None:
        """Ask the keeper now, so that its refusal is known here (and the command
        connects directly) rather than at the agent's first use; the next :meth:`start`
        hands the agent over."""
        self._ahead = None
        self._ahead = self.start()

    def restart(self) -> bool:
        return False  # the keeper checked (or installed) the agent file at its start

    def diagnostics(self) -> str:
        return self._why or f"the keeper's channel to {self.settings.address} closed"

    def close(self) -> None:
        if self._ahead is not None:
            return  # launched, not handed over yet: the next start takes it
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


class SocketReader(io.RawIOBase):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        return self.sock.recv_into(buf)


class SocketWriter(io.RawIOBase):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, buf: Any) -> int:
        self.sock.sendall(buf)
        return memoryview(buf).nbytes


#: lines said in this process (one per reason and host, not one per datastore)
SAID: set[str] = set()


def say_once(line: str) -> None:
    if line not in SAID:
        SAID.add(line)
        log.warning("%s", line)


def open_kept(name: str, root: str, settings: SshSettings,
              found: Found | None = None) -> SshAgentDatastore | None:
    """The datastore through a live keeper for exactly ``settings``, or None (with one
    line when a keeper is there but cannot serve)."""
    found = found or find(settings)
    if found.socket is None:
        if found.why:
            say_once(f"{found.why}: connecting directly")
        return None
    transport = KeptTransport(settings, root, found.socket)
    try:
        transport.launch_now()
    except TransportError as exc:
        say_once(f"keeper not used for {settings.address}: {exc.message}; connecting directly")
        return None
    return SshAgentDatastore(name, transport)
