"""Peers accepted without verification, so that the evidence shows the choice.

``allow_unknown_host_key: true`` (SSH) and ``verify_tls: false`` (vSphere API)
are operator decisions that weaken what a change record can prove.  The
connection that makes such a choice reports a :class:`TrustNotice` with the
fingerprint it saw; :func:`vmigrate_lib.session.open_migration` listens for the
lifetime of the migration and its journal records each notice once
(``unverified_peer`` records, see :mod:`vmigrate_lib.audit.trustjournal`).

Listeners are process-wide because connections are opened deep inside hosts and
datastores (and reopened from worker threads); a process running two
migrations at once journals a notice in both, never in neither.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrustNotice:
    """A peer accepted without verifying its identity."""

    kind: str  #: "ssh_host_key" or "tls_certificate"
    host: str
    port: int
    fingerprint: str  #: "SHA256:..." (SSH, as ssh-keygen -l) or "sha256:AB:..." (TLS), "" if unknown
    setting: str  #: the parameter that allowed it, e.g. "allow_unknown_host_key: true"
    detail: str = ""

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


_lock = threading.Lock()
_listeners: list[Callable[[TrustNotice], None]] = []


def notify(notice: TrustNotice) -> None:
    """Tell every listener (connections call this when they accept a peer unverified)."""
    with _lock:
        listeners = list(_listeners)
    for fn in listeners:
        fn(notice)


class TrustListener:
    """Collects notices from creation until :meth:`close`; each distinct one once."""

    def __init__(self) -> None:
        self._seen: set[TrustNotice] = set()
        self._pending: list[TrustNotice] = []
        self._mine = threading.Lock()
        with _lock:
            _listeners.append(self._on_notice)

    def _on_notice(self, notice: TrustNotice) -> None:
        with self._mine:
            if notice not in self._seen:
                self._seen.add(notice)
                self._pending.append(notice)

    @property
    def seen(self) -> list[TrustNotice]:
        with self._mine:
            return sorted(self._seen, key=lambda n: (n.kind, n.host, n.port, n.fingerprint))

    def take(self) -> list[TrustNotice]:
        """The notices not taken yet (in arrival order)."""
        with self._mine:
            out, self._pending = self._pending, []
            return out

    def close(self) -> None:
        with _lock:
            if self._on_notice in _listeners:
                _listeners.remove(self._on_notice)


__all__ = ["TrustListener", "TrustNotice", "notify"]
