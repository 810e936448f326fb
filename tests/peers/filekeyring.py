"""A real keyring backend in a test's folder: keyrings.alt's PlaintextKeyring.

vmigrate reads ``password_keyring`` references through the ``keyring`` package's
public API (``keyring.get_password``), the same call whatever the backend: the
Secret Service on Linux desktops, macOS Keychain, Windows Credential Locker
(https://pypi.org/project/keyring/, "Configuring").  keyrings.alt's file backend
(https://pypi.org/project/keyrings.alt/) is a real backend behind that API that
needs no desktop session; here it stores its INI file in the test's folder, never
in the user's ``~/.local/share/python_keyring``.  Only a real OS keyring would
show its own failures (a locked collection, no D-Bus session).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def file_keyring(folder: Path) -> Iterator[Any]:
    """Install a PlaintextKeyring stored in ``folder`` as the process's keyring; the previous
    backend comes back afterwards.  Skips when keyring / keyrings.alt are not installed."""
    keyring = pytest.importorskip("keyring")
    alt_file = pytest.importorskip("keyrings.alt.file")
    backend = alt_file.PlaintextKeyring()
    backend.file_path = str(folder / "keyring_pass.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)
