"""Passwords by reference: an environment variable or an OS keyring entry, one syntax.

A params file names where a password is (``password_env`` / ``password_keyring``
for the vSphere API, ``ssh_password_env`` / ``ssh_password_keyring`` for SSH) and
never holds it.  This module is the only place that turns such a reference into
the secret, for both the API and the SSH login, so the two read it the same way.

The keyring reference is ``SERVICE`` or ``SERVICE/USER``, the two arguments of
``keyring set SERVICE USER`` joined by ``/``; without ``/USER`` the login's own
user is looked up.  ``/`` was chosen, and ``:`` is refused (at params validation
and here), because ``a:b`` is how ``user:password`` and ``host:port`` are written:
a pasted ``root:s3cret`` must never be read as an entry name and repeated back.

An empty password (an empty variable or keyring entry) is refused: it is almost
always an ``export VAR=`` gone wrong.  No message repeats a secret, nor the
reference's service text (it might be a secret pasted in the wrong field): they
name the parameter and the user instead.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AuthenticationError, ParameterError

#: Between the keyring service and user in a reference.
SEPARATOR = "/"
KEYRING_HINT = ("write SERVICE or SERVICE/USER (the two names of `keyring set SERVICE USER`), "
                "e.g. vmigrate-esx/root")
INSTALL_HINT = "pip install 'vmigrate[keyring]' (or keyring), or name an environment variable"


@dataclass(frozen=True)
class KeyringRef:
    """One keyring entry: ``keyring get service user`` would print it."""

    service: str
    user: str = ""  #: empty: the login's user


def parse_keyring_ref(text: str, where: str = "password_keyring") -> KeyringRef:
    """``SERVICE`` or ``SERVICE/USER`` -> parts; anything else is a :class:`ParameterError`
    naming ``where`` (the parameter), never the text."""
    service, sep, user = text.partition(SEPARATOR)
    problem = ""
    if ":" in text:
        problem = "separates service and user with '/', not ':'"
    elif SEPARATOR in user:
        problem = "has more than one '/'"
    elif not service or (sep and not user):
        problem = "has an empty service or user"
    elif any(part != part.strip() for part in (service, user)):
        problem = "has a space around the service or user"
    if problem:
        raise ParameterError(f"parameter {where}: a keyring reference {problem}",
                             hint=KEYRING_HINT, parameter=where)
    return KeyringRef(service, user)


@dataclass(frozen=True)
class SecretRef:
    """Where one login's password is (never the password), and what it is for."""

    purpose: str  #: for messages, e.g. "the SSH login root@esx-a:22"
    env: str = ""  #: environment variable name
    keyring: str = ""  #: SERVICE or SERVICE/USER
    user: str = ""  #: the login's user: the keyring user when the reference names none
    env_param: str = "password_env"  #: the parameter names, for messages
    keyring_param: str = "password_keyring"

    @property
    def is_set(self) -> bool:
        return bool(self.env or self.keyring)


def resolve_secret(ref: SecretRef, environ: Mapping[str, str] | None = None) -> str | None:
    """The password ``ref`` points to (the variable first), or None when it names none."""
    if ref.env:
        return _from_env(ref, os.environ if environ is None else environ)
    if ref.keyring:
        return _from_keyring(ref)
    return None


def require_secret(ref: SecretRef, environ: Mapping[str, str] | None = None) -> str:
    """Like :func:`resolve_secret`, for a login that has no other way in."""
    value = resolve_secret(ref, environ)
    if value is None:
        raise AuthenticationError(
            f"no password reference for {ref.purpose}",
            hint=f"set {ref.env_param} (an environment variable's name) or {ref.keyring_param}",
            purpose=ref.purpose)
    return value


def _from_env(ref: SecretRef, environ: Mapping[str, str]) -> str:
    value = environ.get(ref.env)
    if value is None or value == "":
        state = "is not set" if value is None else "is empty"
        raise AuthenticationError(
            f"environment variable {ref.env} ({ref.env_param}) {state} for {ref.purpose}",
            hint=f"export {ref.env}=... (the password, not empty) in the shell that runs vmigrate",
            variable=ref.env, parameter=ref.env_param, purpose=ref.purpose)
    return value


def _from_keyring(ref: SecretRef) -> str:
    entry = parse_keyring_ref(ref.keyring, ref.keyring_param)
    user = entry.user or ref.user
    fields: dict[str, Any] = {"parameter": ref.keyring_param, "user": user,
                              "purpose": ref.purpose}
    if not user:
        raise AuthenticationError(
            f"{ref.keyring_param} names no user and {ref.purpose} has none",
            hint=KEYRING_HINT, **fields)
    try:
        keyring: Any = importlib.import_module("keyring")
    except ImportError as exc:
        raise AuthenticationError(
            f"{ref.keyring_param} is set but the keyring package is not installed",
            hint=INSTALL_HINT, **fields) from exc
    try:
        value = keyring.get_password(entry.service, user)
    except Exception as exc:  # any backend's failure: locked, no backend, D-Bus down
        # Only the class: a backend's text may quote its store (configparser quotes the
        # line it could not parse, which can be a password).
        raise AuthenticationError(
            f"keyring lookup for {ref.keyring_param} (user {user!r}) failed with "
            f"{type(exc).__name__}",
            hint="check that `keyring get SERVICE USER` works for the user that runs "
            "vmigrate, or name an environment variable", **fields) from exc
    if value is None or value == "":
        state = "no keyring entry" if value is None else "an empty keyring entry"
        raise AuthenticationError(
            f"{state} for user {user!r} in the service {ref.keyring_param} names "
            f"({ref.purpose})",
            hint=f"store it with `keyring set SERVICE {user}` (the same user that runs vmigrate)"
            f", or name an environment variable", **fields)
    return str(value)


__all__ = ["KEYRING_HINT", "KeyringRef", "SecretRef", "parse_keyring_ref", "require_secret",
           "resolve_secret"]
