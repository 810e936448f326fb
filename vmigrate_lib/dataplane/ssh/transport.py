"""The agent on an exec channel of an :class:`SshConnection` (the Transport over SSH)."""

from __future__ import annotations

import io
import time
from typing import IO

from ...errors import AgentError, AgentFileUnsafe, TransportError, VmigrateError
from ..sshconfig import SshSettings
from ..transport import Transport
from .agentfile import NEED, REFUSED, launch_command
from .channel import ChannelReader, ChannelWriter, RateLimiter
from .connection import SshConnection
from .paramiko_lazy import paramiko


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
        #: what :meth:`launch` started (or the error it met), handed over by the next start
        self._ahead: tuple[IO[bytes], IO[bytes]] | VmigrateError | None = None
        self._holds = True  #: this transport still holds its connection (see shutdown)

    def remote_command(self, ensure: bool = True) -> str:
        """The command that starts this datastore's agent on its host (``ensure``: the
        agent file is installed first; else it is tried as is, see :meth:`restart`)."""
        path = self.conn.ensure_agent() if ensure else self.conn.agent_target()
        return launch_command(self.settings, path, self.conn.agent_sha256, self.root)

    def restart(self) -> bool:
        """After a failed start: when this connection tried the agent file without
        installing it and the launcher found it missing or not the agent's (exit NEED or
        REFUSED), install it (the install refuses an unsafe folder, replaces a wrong file
        with a warning, as before) and say to start again."""
        if self.conn.agent_path is not None or self.last_exit not in (NEED, REFUSED):
            return False
        self.conn.ensure_agent()
        return True

    def launch(self) -> None:
        """Start the agent now without waiting for it; the next :meth:`start` hands it
        over (or raises the error this start met).  The host starts its python while
        this machine does other work, and agents on several hosts start at once."""
        if self._ahead is None and self._chan is None:
            try:
                self._ahead = self.start()
            except VmigrateError as exc:  # raised where it would have been: at the first use
                self._ahead = exc

    def start(self) -> tuple[IO[bytes], IO[bytes]]:
        ahead, self._ahead = self._ahead, None
        if isinstance(ahead, VmigrateError):
            raise ahead
        if ahead is not None and self._chan is not None and not self._chan.closed:
            return ahead
        self.close()
        s = self.settings
        try:
            cmd = self.remote_command(ensure=False)
            chan = self._open_session()
            chan.settimeout(s.io_timeout)
            chan.exec_command(cmd)
        except paramiko.ChannelException as exc:  # refused by sshd: the connection is fine
            raise TransportError(
                f"cannot start the agent on {s.address}: {exc}", host=s.host, root=self.root
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.conn.close()  # a half-dead connection: the next start reconnects
            raise TransportError(
                f"cannot start the agent on {s.address}: {exc}", host=s.host, root=self.root
            ) from exc
        self._chan = chan
        self._stderr = bytearray()
        self.last_exit = None
        self.starts += 1
        reader = io.BufferedReader(ChannelReader(chan, s.read_size, self.limiter), buffer_size=s.read_size)
        writer = io.BufferedWriter(ChannelWriter(chan, self.limiter), buffer_size=s.write_buffer)
        return reader, writer

    def _open_session(self) -> paramiko.Channel:
        """A session channel on this transport's connection.  When sshd refuses one more
        session on a connection shared with others (``MaxSessions``: 10 by default, 1
        where the DISA STIG for ESXi is applied), this transport leaves that connection
        to them and takes one of its own."""
        s = self.settings
        try:
            return self.conn.transport().open_session(window_size=s.window_size,
                                                      max_packet_size=s.max_packet_size)
        except paramiko.ChannelException:
            if not (self.conn.pooled and self.conn.users > 1 and self._holds):
                raise
        self.conn = self.conn.refused_session()
        return self.conn.transport().open_session(window_size=s.window_size,
                                                  max_packet_size=s.max_packet_size)

    def failed_start(self, exc: TransportError, datastore: str) -> VmigrateError | None:
        """The launcher refused the agent file, or the agent ran and refused to serve.

        Neither is a network fault, so no reconnect would help: the file's owner,
        mode or digest is wrong (:class:`AgentFileUnsafe`), or the datastore folder
        or python3 on the host (:class:`AgentError`).
        """
        host = self.settings.host
        if self.last_exit == REFUSED:
            why = self.stderr_text().splitlines()
            return AgentFileUnsafe(
                f"{(why[-1] if why else 'refusing the agent file').removeprefix('vmigrate: ')}"
                f" on {host}", host=host, datastore=datastore,
            )
        if self.last_exit not in (None, -1):
            return AgentError(
                f"the agent on {host} could not start: {exc.message}",
                hint="check the datastore folder and python3 on the host",
                datastore=datastore, host=host,
            )
        return None

    def _drain_stderr(self) -> None:
        chan = self._chan
        if chan is None:
            return
        try:
            while chan.recv_stderr_ready():
                self._stderr += chan.recv_stderr(65536)
        except (OSError, paramiko.SSHException):
            pass

    def stderr_text(self) -> str:
        """What the agent (or its launcher) wrote on stderr so far."""
        self._drain_stderr()
        return self._stderr.decode("utf-8", "replace").strip()

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
        if self._ahead is not None:
            return  # launched, not handed over yet: the next start takes it
        chan, self._chan = self._chan, None
        if chan is not None:
            try:
                chan.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass

    def shutdown(self) -> None:
        """Close the channel (a launched agent too) and give the SSH connection back
        (a shared one closes when its last user is done, see
        :func:`~vmigrate_lib.dataplane.ssh.connection.shared_connection`)."""
        self._ahead = None
        self.close()
        if self._holds:
            self._holds = False
            self.conn.release()
        else:
            self.conn.close()
