"""Local file-system faults as one line: a full disk or quota anywhere during a command.

ENOSPC / EDQUOT can surface from any write (the journal, ``state.json``, the
evidence, papermill saving a notebook).  State writes are atomic and the journal
append-only, so the recorded state stays resumable; the faces turn the OSError
into :class:`LocalDiskFull` (exit 1) here instead of a traceback.
"""

from __future__ import annotations

import errno

from .errors import LocalDiskFull

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException) -> LocalDiskFull | None:
    """The :class:`LocalDiskFull` an exception (or one it was raised from) stands for."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in FULL:
            what = "disk quota exceeded" if cur.errno == errno.EDQUOT else "no space left"
            where = f" writing {str(cur.filename)[:200]}" if cur.filename else ""
            return LocalDiskFull(f"{what} on a local file system{where}",
                                 errno=errno.errorcode.get(cur.errno or 0, ""),
                                 path=str(cur.filename or ""))
        cur = cur.__cause__ or cur.__context__
    return None
