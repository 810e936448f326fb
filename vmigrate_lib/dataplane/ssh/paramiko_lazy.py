"""paramiko, imported at its first use rather than with the SSH data plane.

A command served by a connection keeper (:mod:`vmigrate_lib.dataplane.keep`) talks to its
agents over a unix socket and never opens an SSH connection itself: importing paramiko
(and cryptography) would cost it ~0.1 s of its start (``python -X importtime``) for
nothing.  The modules of this package name ``paramiko`` through this one; the real module
loads at the first attribute read (a connect, an exception class in an ``except`` that
runs, a type check), and only annotations name it before.

paramiko.config imports invoke only for ``Match exec`` in ssh_config files (which vmigrate
never reads); invoke pulls in unittest.mock and asyncio: 0.15-0.25 s of every command over
SSH, measured here.  A None entry makes that import fail, which paramiko handles
(``invoke = None``); the entry goes once paramiko is loaded, so a later ``import invoke``
elsewhere works as usual.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

_lock = threading.Lock()


def load() -> ModuleType:
    """The real paramiko, loaded once (without invoke, see above)."""
    with _lock:
        mod = sys.modules.get("paramiko")
        if mod is not None:
            return mod
        hide = "invoke" not in sys.modules
        if hide:
            sys.modules["invoke"] = None  # type: ignore[assignment]
        try:
            return importlib.import_module("paramiko")
        finally:
            if hide:
                del sys.modules["invoke"]


class LazyModule:
    """Stands for paramiko until an attribute is read."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load(), name)


if TYPE_CHECKING:
    import paramiko as paramiko  # re-exported: the modules here name it through this one
else:
    paramiko = LazyModule()

__all__ = ["load", "paramiko"]
