"""A journal that also records the peers this run accepted unverified.

Preflight writes nothing, so a notice (see :mod:`vmigrate_lib.trust`) waits
until the run writes its first journal record of its own; from then on each
new notice lands with the next record, and whatever is still pending when the
migration is closed lands then (only if this run wrote to the journal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.workspace import Journal
from ..trust import TrustListener

#: The journal record type of one peer accepted without verification.
RECORD_TYPE = "unverified_peer"


class TrustJournal(Journal):
    """:class:`Journal` that appends ``unverified_peer`` records after its own."""

    def __init__(self, path: Path, listener: TrustListener) -> None:
        super().__init__(path)
        self.listener = listener
        self.wrote = False

    def append(self, type_: str, **record: Any) -> dict[str, Any]:
        entry = super().append(type_, **record)
        self.wrote = True
        self.flush_notices()
        return entry

    def flush_notices(self) -> None:
        """Journal the notices not journaled yet (once this run has written)."""
        if not self.wrote:
            return
        for n in self.listener.take():
            super().append(RECORD_TYPE, **n.to_record())

    def close(self) -> None:
        self.flush_notices()
        self.listener.close()


__all__ = ["RECORD_TYPE", "TrustJournal"]
