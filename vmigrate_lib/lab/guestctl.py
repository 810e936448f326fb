"""Talking to a running guest over its control socket (JSON lines).

The socket lives in the temp dir under a hash of the VM folder, because
``AF_UNIX`` paths are limited to ~100 bytes and lab roots can be deep.
Errors raised in the guest come back by name and are re-raised here as the
same :mod:`vmigrate_lib.errors` class.
"""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import LabError, VmigrateError


def socket_path(vmdir: Path) -> str:
    digest = hashlib.sha1(str(vmdir.resolve()).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"vmlab-{digest}.sock")


class GuestUnreachable(LabError):
    """The guest's control socket does not answer (not running, or still starting)."""


def encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def error_reply(exc: BaseException) -> dict[str, Any]:
    """How the guest reports a failure to its caller."""
    if isinstance(exc, VmigrateError):
        return {"ok": False, **exc.to_dict()}
    return {"ok": False, "error": "LabError", "message": f"guest error: {exc!r}", "fields": {}}


def raise_reply(reply: dict[str, Any]) -> None:
    cls = getattr(errors, str(reply.get("error", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, VmigrateError)):
        cls = LabError
    fields = reply.get("fields") or {}
    raise cls(str(reply.get("message", "guest error")), hint=reply.get("hint") or None, **fields)


def call(vmdir: Path, cmd: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
    """Send one command, wait for its reply; raise the guest's error if it failed."""
    path = socket_path(vmdir)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(encode({"cmd": cmd, **args}))
            buf = b""
            while not buf.endswith(b"\n"):
                part = sock.recv(65536)
                if not part:
                    break
                buf += part
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise GuestUnreachable(
            f"guest of {vmdir.name} is not reachable", vm_dir=str(vmdir), socket=path
        ) from exc
    except OSError as exc:
        raise LabError(
            f"guest of {vmdir.name} failed during {cmd!r}: {exc}", vm_dir=str(vmdir), command=cmd
        ) from exc
    if not buf:
        raise LabError(
            f"guest of {vmdir.name} closed the connection during {cmd!r} (crashed?)",
            vm_dir=str(vmdir),
            command=cmd,
        )
    reply: dict[str, Any] = json.loads(buf)
    if not reply.get("ok"):
        raise_reply(reply)
    return reply
