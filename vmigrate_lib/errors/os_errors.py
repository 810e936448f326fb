"""Below the boundary: OS errors with details, converted where they are caught."""

from __future__ import annotations

import os


class PartialWrite(OSError):
    """A write that stopped part-way (:mod:`vmigrate_lib.atomicfile`): ``written`` of
    ``total`` bytes reached ``filename``.  An :class:`OSError`, so that code catching
    file-system errors still does; the caller turns it into its own error."""

    def __init__(self, err: int, filename: str, written: int, total: int) -> None:
        super().__init__(err, os.strerror(err), filename)
        self.written = written
        self.total = total

