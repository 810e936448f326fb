"""Where a keeper listens, and which host settings it serves (no paramiko here).

A keeper's sockets live in one folder of the operator's: ``$XDG_RUNTIME_DIR/vmigrate``
(the per-user runtime folder of the XDG Base Directory spec, 0700 by definition), else
``/tmp/vmigrate-keep-<uid>``.  The folder must be a real folder (not a symlink) owned by
this user with no access for anyone else, as OpenSSH wants of a ControlPath's folder
and tmux of its socket folder; anything else is refused, never repaired.

One socket per SSH host the keeper holds, named ``<host>_<port>.<digest>.sock``: a
command looks for the name its own settings give, so a keeper for other settings of the
same host is seen (and said) but never used.  The digest covers what decides which host
is reached and as whom and how it is verified (host, port, user, key file, known_hosts
path and content, pinned fingerprint, unknown-key policy, the agent's folder, python and
the agent's own digest), never a secret: a password is a reference, and neither it nor
the key's content is read here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ...errors import KeeperUnsafe
from ..sshconfig import SshSettings
from ..transport import agent_zipapp

SUFFIX = ".sock"


def keep_dir() -> Path:
    """The folder of this user's keepers (not created here)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "vmigrate"
    return Path(f"/tmp/vmigrate-keep-{os.getuid()}")


def check_dir(path: Path, create: bool = False) -> Path:
    """``path`` if it is this user's private folder (made 0700 when ``create``), else
    :class:`KeeperUnsafe`."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise KeeperUnsafe(f"cannot make the keeper folder {path}: {exc.strerror}",
                               path=str(path)) from exc
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise KeeperUnsafe(f"no keeper folder {path}", path=str(path)) from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise KeeperUnsafe(
            f"the keeper folder {path} is not a folder of uid {os.getuid()} with mode 0700 "
            f"(uid {st.st_uid}, mode {stat.filemode(st.st_mode)})", path=str(path))
    return path


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "absent"


def settings_digest(s: SshSettings) -> str:
    """What must match between a keeper and a command for the keeper to serve it."""
    known = s.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
    fields = {
        "host": s.host, "port": s.port, "user": s.user, "key": s.key_filename,
        "known_hosts": known, "known_hosts_sha256": _file_digest(known),
        "fingerprint": s.fingerprint, "allow_unknown_host": s.allow_unknown_host,
        "agent_dir": s.agent_dir, "python": s.python, "agent": agent_zipapp()[1],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def host_stem(s: SshSettings) -> str:
    """``host_port`` as a file name (anything but letters, digits, ``.-`` becomes ``-``)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", s.host) + f"_{s.port}"


@dataclass(frozen=True)
class Found:
    """What a command found for its settings: a socket to use, or why none."""

    socket: Path | None
    why: str = ""  #: empty when nothing is there at all (no line then)


def find(s: SshSettings) -> Found:
    """The socket of a keeper for exactly these settings, if one is there."""
    base = keep_dir()
    if not base.exists():
        return Found(None)
    stem = host_stem(s)
    name = f"{stem}.{settings_digest(s)}{SUFFIX}"
    try:
        check_dir(base)
        names = os.listdir(base)
    except (KeeperUnsafe, OSError) as exc:
        return Found(None, f"keeper folder unusable ({exc})")
    if name in names:
        return Found(base / name)
    if any(n.startswith(stem + ".") and n.endswith(SUFFIX) for n in names):
        return Found(None, f"the keeper for {s.host}:{s.port} holds other settings (user, "
                     "key, known_hosts, fingerprint or agent differ)")
    return Found(None)
