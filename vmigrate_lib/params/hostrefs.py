"""How a host is reached, checked before anything connects: names, URLs, references.

A params file names secrets (an environment variable, a keyring entry, a key
file) and never holds them.  What an operator pastes by mistake is recognised
here and refused by the parameter's name, never repeated: a password in a URL
or in ``user:password@host``, key material in ``ssh_key``, a value in ``*_env``.
Lab hosts and datastores are folder names under the lab root, so they are
names, never paths.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ..credentials import parse_keyring_ref
from ..errors import ParameterError

#: A lab host or datastore, a VM: a name, never a path (``\Z``: no trailing newline).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}\Z")
#: POSIX portable environment variable names (XBD 8.1: upper case, digits, underscore).
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}\Z")
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "private_key")
_KEY_PATHS = frozenset({"ssh_key", "ssh_direct_key"})
_MAX_TEXT = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

REFERENCE_HINT = ("never put a secret in a params file or notebook; name an environment "
                  "variable with password_env / ssh_password_env (or a keyring entry with "
                  "password_keyring / ssh_password_keyring)")


def is_secret_key(key: object) -> bool:
    """``password``, ``ssh_password``, ``api_token``...; not ``password_env`` (a reference)."""
    k = str(key).lower()
    return any(w in k for w in _SECRET_WORDS) and not k.endswith(("_env", "_keyring"))


def check_text(where: str, value: str, *, multiline: bool = False) -> str:
    """A bounded string without control characters (``multiline``: tabs and newlines ok)."""
    if len(value) > _MAX_TEXT:
        raise ParameterError(f"parameter {where} is longer than {_MAX_TEXT} characters",
                             parameter=where)
    bad = value.replace("\t", "").replace("\n", "") if multiline else value
    if _CONTROL.search(bad):
        raise ParameterError(
            f"parameter {where}: holds a control character (a newline, tab or NUL)",
            hint="write it on one line without control characters", parameter=where)
    return value


def check_field(where: str, name: str, value: str) -> None:
    """Per-field checks of a host's string parameters (before the generic text check)."""
    if name.endswith("_env") and value and not ENV_NAME.match(value):
        raise ParameterError(
            f"parameter {where} must name an environment variable (A-Z, 0-9, _), "
            "not hold its value",
            hint="export the secret as e.g. VC_PASSWORD=... where vmigrate runs and give "
            "the name VC_PASSWORD here", parameter=where)
    if name.endswith("_keyring") and value:
        parse_keyring_ref(value, where)  # SERVICE or SERVICE/USER (credentials.py says why)
    if name in _KEY_PATHS and value and _key_material(value):
        raise ParameterError(
            f"parameter {where} holds key material, not a path",
            hint="save the private key in a file only you can read (chmod 600) and give its "
            "path, or use ssh-agent", parameter=where)
    if name in ("user", "ssh_user") and ":" in value:
        raise ParameterError(
            f"parameter {where}: a user name has no ':' (user:password is a password)",
            hint="give only the user; " + REFERENCE_HINT, parameter=where)
    if name in ("url", "host") and value and _has_password(value):
        raise ParameterError(
            f"parameter {where} holds a password",
            hint="give only the user in it; " + REFERENCE_HINT, parameter=where)


def _key_material(value: str) -> bool:
    """Key text, not a path: PEM armour, line breaks, or a 'file name' longer than
    any file system allows (NAME_MAX, 255 bytes): a pasted base64 body."""
    if "-----BEGIN" in value or "PRIVATE KEY" in value or "\n" in value:
        return True
    return any(len(part.encode()) > 255 for part in value.split("/"))


def _has_password(value: str) -> bool:
    text = value.strip()
    if "://" not in text:
        if "@" not in text:
            return False
        text = "ssh://" + text
    try:
        return urllib.parse.urlsplit(text).password is not None
    except ValueError:
        return False


def check_host(side: str, values: Mapping[str, Any]) -> None:
    """Checks that depend on the host's type (``values``: the section as given)."""
    kind = values.get("type", "lab")
    host = str(values.get("host", ""))
    datastore = str(values.get("datastore", ""))
    url = str(values.get("url", ""))
    if kind == "lab":
        if host and not NAME.match(host):
            raise ParameterError(
                f"parameter {side}.host: a lab host is a name (letters, digits, . _ -), "
                "not a path", hint="use the name `vmigrate lab status` lists, e.g. esx-a",
                parameter=f"{side}.host")
        if datastore and not NAME.match(datastore):
            raise ParameterError(
                f"parameter {side}.datastore: a lab datastore is a name (letters, digits, "
                ". _ -), not a path", hint="e.g. datastore1", parameter=f"{side}.datastore")
        if url and not url.startswith("ssh://"):
            raise ParameterError(
                f"parameter {side}.url: a lab host's url is ssh://[user@]host[:port]",
                hint="or leave url out to use the lab's folders directly",
                parameter=f"{side}.url")
    else:
        if host:
            _check_target(f"{side}.host", "ssh://" + host)
        if datastore and (len(datastore) > 80 or any(c in datastore for c in "/[]")):
            raise ParameterError(
                f"parameter {side}.datastore: a datastore name has at most 80 characters "
                "and no / [ ]", hint="give the name the host shows, e.g. datastore1",
                parameter=f"{side}.datastore")
    if kind == "esxi" and url and not url.startswith("ssh://"):
        raise ParameterError(
            f"parameter {side}.url: an esxi host has no API URL, only SSH",
            hint="remove url (host names the SSH target), or write ssh://[user@]host[:port]; "
            "for the vSphere API set type: vsphere", parameter=f"{side}.url")
    if url.startswith("ssh://"):
        _check_target(f"{side}.url", url, is_url=True)
    elif url:
        _check_port(f"{side}.url", url if "://" in url else f"https://{url}")


def _check_target(where: str, url: str, is_url: bool = False) -> None:
    """``ssh://[user@]host[:port][/]``: a host, a port from 1 to 65535, nothing else."""
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname
    except ValueError:
        host = None
    if (not host or any(c.isspace() for c in url) or (is_url and u.path not in ("", "/"))
            or u.query or u.fragment or (not is_url and u.path)):
        raise ParameterError(
            f"parameter {where}: " + ("not an ssh URL" if is_url else "not a host name"),
            hint="write ssh://[user@]host[:port], e.g. ssh://root@10.0.0.5:22" if is_url
            else "write host, user@host or user@host:port", parameter=where)
    _check_port(where, url)


def _check_port(where: str, url: str) -> None:
    """A port, if the URL gives one, is a number from 1 to 65535."""
    try:
        port = urllib.parse.urlsplit(url).port
    except ValueError:
        port = 0
    if port is not None and not 0 < port < 65536:
        raise ParameterError(f"parameter {where}: the port must be a number from 1 to 65535",
                             hint="e.g. :22 for SSH, :443 for HTTPS", parameter=where)
