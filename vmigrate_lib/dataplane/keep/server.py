"""The keeper's loop: unix sockets in the operator's 0700 folder, checked callers, splices.

Each connection is checked with ``SO_PEERCRED`` before a byte is read: a process of
another uid is refused and logged (the socket's 0600 mode already keeps others out; the
check holds where a folder's mode was loosened by hand).  Then one request line
(:mod:`.wire`): ``agent`` hands over a running agent on one datastore folder and splices
bytes between the socket and that exec channel until either side ends; ``status`` and
``stop`` answer for the keeper.  The keeper ends at its expiry, after ``idle`` seconds
with no channel served and none open, on ``stop`` or on SIGTERM; it removes its sockets.
Nothing here sends the agents a request: every request an agent serves comes from the
command at the socket's other end.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ...errors import KeeperError, VmigrateError
from ...trust import TrustListener
from ..ssh.paramiko_lazy import paramiko
from . import wire
from .hold import HostHold

log = logging.getLogger("vmigrate.keep")

CHUNK = 1 << 20
#: a caller has this long to send its request line
REQUEST_TIMEOUT = 10.0


def refuse_if_served(path: Path) -> None:
    """A live keeper already answers on ``path``: :class:`KeeperError` (two keepers for
    one host would leave one unreachable by ``keep stop``)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(str(path))
        wire.send_line(s, {"op": "status"})
        pid = wire.recv_line(s).get("pid")
    except (OSError, ValueError):
        return  # nobody answers: a stale socket
    finally:
        s.close()
    raise KeeperError(f"keeper {pid} already holds this host ({path.name})",
                      hint="use it, or end it first with vmigrate keep stop", pid=pid)


class Keeper:
    """Listens for the hosts in ``holds`` until ``until`` (monotonic) or idle too long."""

    def __init__(self, holds: list[HostHold], folder: Path, until: float, idle: float) -> None:
        self.holds = holds
        self.folder = folder
        self.until = until
        self.idle = idle
        self.started = time.time()
        self.expires = self.started + (until - time.monotonic())
        self.last_used = time.monotonic()
        self.open_channels = 0
        self.refused = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.sockets: dict[socket.socket, HostHold] = {}
        #: peers its logins accepted unverified (``allow_unknown_host_key``), handed on
        self.trust = TrustListener()
        self.paths: list[Path] = []

    def listen(self, names: dict[str, str]) -> None:
        """One listening socket per hold, 0600, named ``names[digest]``."""
        old = os.umask(0o177)
        try:
            for hold in self.holds:
                path = self.folder / names[hold.digest]
                if path.exists():
                    refuse_if_served(path)
                    path.unlink()  # a keeper killed before it removed its socket
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind(str(path))
                os.chmod(path, 0o600)
                s.listen(16)
                self.sockets[s] = hold
                self.paths.append(path)
        finally:
            os.umask(old)

    def serve(self) -> None:
        sel = selectors.DefaultSelector()
        for s in self.sockets:
            sel.register(s, selectors.EVENT_READ)
        try:
            while not self.stopping.is_set() and not self._expired():
                for key, _ in sel.select(timeout=0.5):
                    lsock = key.fileobj
                    assert isinstance(lsock, socket.socket)
                    conn, _addr = lsock.accept()
                    threading.Thread(target=self.handle, args=(conn, self.sockets[lsock]),
                                     daemon=True, name="vmigrate-keep-client").start()
        finally:
            sel.close()
            self.close()

    def _expired(self) -> bool:
        now = time.monotonic()
        if now >= self.until:
            log.info("expired: stopping")
            return True
        with self._lock:
            idle = self.open_channels == 0 and now - self.last_used > self.idle
        if idle:
            log.info("idle for %.0f s: stopping", self.idle)
        return idle

    def handle(self, conn: socket.socket, hold: HostHold) -> None:
        try:
            pid, uid = wire.peer_uid(conn)
            if uid != os.getuid():
                with self._lock:
                    self.refused += 1
                log.warning("refused a connection from pid %d uid %d (not uid %d)",
                            pid, uid, os.getuid())
                wire.send_line(conn, {"ok": False, "error": f"uid {uid} is not the keeper's"})
                return
            conn.settimeout(REQUEST_TIMEOUT)
            try:
                req = wire.recv_line(conn)
            except (ValueError, OSError) as exc:
                log.warning("bad request from pid %d: %s", pid, exc)
                wire.send_line(conn, {"ok": False, "error": f"bad request: {exc}"})
                return
            self.answer(conn, hold, req, pid)
        except OSError as exc:
            log.info("a caller went away: %s", exc)
        finally:
            conn.close()

    def answer(self, conn: socket.socket, hold: HostHold, req: dict[str, Any], pid: int) -> None:
        op = req.get("op")
        if op == "status":
            wire.send_line(conn, {"ok": True, **self.status()})
        elif op == "stop":
            log.info("stop asked by pid %d", pid)
            wire.send_line(conn, {"ok": True})
            self.stopping.set()
        elif op == "agent" and set(req) == {"op", "digest", "root"}:
            if req["digest"] != hold.digest:
                wire.send_line(conn, {"ok": False, "error": "other host settings"})
                return
            try:
                chan = hold.open_agent(str(req["root"]))
            except VmigrateError as exc:
                log.warning("agent for pid %d on %s not served: %s", pid, req["root"],
                            exc.one_line())
                wire.send_line(conn, {"ok": False, "error": exc.one_line()})
                return
            log.info("agent on %s:%s for pid %d", hold.settings.host, req["root"], pid)
            # a host key accepted unverified is the command's evidence too (its journal)
            trust = [n.to_record() for n in self.trust.seen
                     if (n.host, n.port) == (hold.settings.host, hold.settings.port)]
            wire.send_line(conn, {"ok": True, "trust": trust})
            self.splice(conn, chan)
        else:
            log.warning("refused request from pid %d: %.200r", pid, req)
            wire.send_line(conn, {"ok": False, "error": "unknown request: the keeper serves "
                                  "only " + ", ".join(wire.OPS)})

    def splice(self, conn: socket.socket, chan: paramiko.Channel) -> None:
        """Bytes both ways until one side ends; then both are closed (the agent sees EOF)."""
        with self._lock:
            self.open_channels += 1
            self.last_used = time.monotonic()
        conn.settimeout(None)
        chan.settimeout(None)

        def up() -> None:  # command -> agent
            try:
                while data := conn.recv(CHUNK):
                    chan.sendall(data)
            except (OSError, EOFError, paramiko.SSHException):
                pass
            finally:
                chan.close()

        t = threading.Thread(target=up, daemon=True, name="vmigrate-keep-up")
        t.start()
        try:  # agent -> command
            while data := chan.recv(CHUNK):
                conn.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            chan.close()
            t.join(5)
            with self._lock:
                self.open_channels -= 1
                self.last_used = time.monotonic()

    def status(self) -> dict[str, Any]:
        with self._lock:
            open_now, refused = self.open_channels, self.refused
        return {"pid": os.getpid(), "started": self.started, "expires": self.expires,
                "idle": self.idle, "open": open_now, "refused": refused,
                "hosts": [h.status() for h in self.holds]}

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        for p in self.paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        for h in self.holds:
            h.close()
        self.trust.close()
