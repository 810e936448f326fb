"""pyVmomi as seen by this package: typed ``Any`` (its partial stubs disagree with mypy --strict)."""

from __future__ import annotations

from typing import Any

import pyVmomi as _pyvmomi
from pyVim import connect as _connect

vim: Any = _pyvmomi.vim
vmodl: Any = _pyvmomi.vmodl
SmartConnect: Any = _connect.SmartConnect
Disconnect: Any = _connect.Disconnect

__all__ = ["Disconnect", "SmartConnect", "vim", "vmodl"]
