"""What a command and a keeper say on the unix socket before the bytes flow.

One JSON line each way: the command's request, the keeper's answer.  After an answer
``{"ok": true}`` to ``agent``, the socket carries the agent's bytes both ways (the
keeper splices them to and from an exec channel it opened); any other answer ends the
connection.  Requests are a closed set (``agent``, ``status``, ``stop``); a request
names a datastore folder, never a command: the keeper builds the launcher's command
line itself.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

#: the longest request or answer line (a request names a host digest and a folder)
MAX_LINE = 8192
OPS = ("agent", "status", "stop")


def send_line(sock: socket.socket, obj: dict[str, Any]) -> None:
    sock.sendall(json.dumps(obj, sort_keys=True).encode() + b"\n")


def recv_line(sock: socket.socket) -> dict[str, Any]:
    """One JSON object line, read a byte at a time so that nothing after it is consumed
    (the agent's bytes follow on the same socket); ValueError if it is not one."""
    buf = bytearray()
    while not buf.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            raise ValueError("connection closed before a full line")
        buf += b
        if len(buf) > MAX_LINE:
            raise ValueError("line too long")
    obj = json.loads(buf)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a unix socket (SO_PEERCRED,
    unix(7): the credentials the peer had when it connected, set by the kernel)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid, uid
