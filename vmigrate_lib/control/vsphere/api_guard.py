"""Every public method of a vSphere host: a lost connection is a one-line error.

pyVmomi reads a managed object's property on attribute access (``vm.name`` in a
message), outside :meth:`Connection.call`; the class decorator here turns a socket or
HTTP failure anywhere in a method into the connection's :class:`HostApiError`.  It
wraps only the methods the class itself defines (``vars(cls)``), so the host keeps its
API methods on the class, delegating to modules such as :mod:`.vm_checks`.
"""

from __future__ import annotations

import functools
import http.client
import inspect
from collections.abc import Callable
from typing import Any, TypeVar
from xml.parsers.expat import ExpatError

_C = TypeVar("_C", bound=type)

#: Methods whose failures are not the API connection's (the SSH data plane, teardown).
UNGUARDED = {"open_datastore", "close"}


def guard_api(cls: _C) -> _C:
    """Every public method of ``cls``: a connection that fails or stops answering
    outside :meth:`Connection.call` (pyVmomi reads a managed object's property on
    attribute access, e.g. ``vm.name`` in a message) is a one-line
    :class:`HostApiError` too, never a raw socket error."""
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or name in UNGUARDED or not inspect.isfunction(fn):
            continue

        def wrap(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
            @functools.wraps(fn)
            def run(self: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(self, *args, **kwargs)
                except (OSError, http.client.HTTPException, ExpatError) as exc:
                    raise self.conn.lost(exc, name.replace("_", " ")) from exc
            return run

        setattr(cls, name, wrap(fn, name))
    return cls
