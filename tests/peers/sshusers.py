"""A throwaway local user with a random password, for sshd's password-login tests.

Root only; the user is removed afterwards, and users left by a killed run
(name = prefix + dead pid) are removed by the next one.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator


class UserError(RuntimeError):
    """The user cannot be made here (not root, tools missing)."""


@contextlib.contextmanager
def throwaway_user(prefix: str = "vmgpw") -> Iterator[tuple[str, str]]:
    """Create a local user with a random password; remove it afterwards (root only)."""
    if os.geteuid() != 0:
        raise UserError("creating a user needs root")
    for tool in ("useradd", "userdel", "chpasswd"):
        if not shutil.which(tool):
            raise UserError(f"{tool} not found")
    name = f"{prefix}{os.getpid()}"
    cleanup_stale_users(prefix)
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
    home = tempfile.mkdtemp(prefix=f"{name}-home-")
    password = secrets.token_urlsafe(16)
    subprocess.run(
        ["useradd", "-M", "-d", home, "-s", "/bin/sh", name], check=True, capture_output=True
    )
    try:
        u = pwd.getpwnam(name)
        os.chown(home, u.pw_uid, u.pw_gid)
        subprocess.run(
            ["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True
        )
        yield name, password
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def cleanup_stale_users(prefix: str = "vmgpw") -> list[str]:
    """Remove throwaway users left by killed runs (name = prefix + dead pid)."""
    removed = []
    for u in pwd.getpwall():
        rest = u.pw_name[len(prefix) :]
        if u.pw_name.startswith(prefix) and rest.isdigit():
            try:
                os.kill(int(rest), 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            subprocess.run(["userdel", u.pw_name], check=False, capture_output=True)
            if u.pw_dir.startswith(tempfile.gettempdir()):
                shutil.rmtree(u.pw_dir, ignore_errors=True)
            removed.append(u.pw_name)
    return removed
