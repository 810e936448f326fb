"""A real TCP proxy that, on command, stops answering: a half-open peer.

A host that crashed, a firewall that silently drops an idle flow, or a vCenter
failing over leaves the client's TCP connection open with nobody answering on
the other end; a request sent on it waits for an answer that never comes
(RFC 1122 4.2.3.6: TCP keep-alives are off by default and, when on, start
after no less than two hours).  ``stall()`` makes this proxy behave so: open
connections stop relaying in both directions and new ones are accepted and
never answered.  ``resume()`` drops every connection that stalled (as the
peer's eventual reset would) and relays new ones again.
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Any


class StallProxy:
    """Listens on 127.0.0.1 (``.port``) and relays to ``(host, port)``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stalled = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []  #: sockets to drop on resume
        self.accepted_while_stalled = 0
        self._thread = threading.Thread(target=self._accept_loop, name="stallproxy", daemon=True)

    def __enter__(self) -> StallProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        with self._lock:
            self._stalled.clear()
            held, self._held = self._held, []
        for s in held:
            _close(s)

    def close(self) -> None:
        self._closed.set()
        _close(self._listener)
        self.resume()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stalled.is_set():  # accept, never answer
                    self.accepted_while_stalled += 1
                    self._held.append(client)
                    continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        pair = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as sel:
            for s in pair:
                sel.register(s, selectors.EVENT_READ)
            try:
                while not self._closed.is_set():
                    if self._stalled.is_set():
                        with self._lock:
                            if self._stalled.is_set():
                                self._held += [client, upstream]
                                return  # stop relaying; resume() drops both
                    for key, _ in sel.select(0.05):
                        src: Any = key.fileobj
                        data = src.recv(65536)
                        if not data:
                            return self._finish(client, upstream)
                        if self._stalled.is_set():
                            break  # swallowed: the other side never sees it
                        pair[src].sendall(data)
            except OSError:
                self._finish(client, upstream)

    def _finish(self, *socks: socket.socket) -> None:
        for s in socks:
            _close(s)


def _close(s: socket.socket) -> None:
    try:
        s.close()
    except OSError:
        pass
