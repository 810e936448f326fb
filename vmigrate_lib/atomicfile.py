"""Replace a file atomically and durably: the one way vmigrate rewrites a whole file.

Readers (another process, the next run after a crash or a power loss) see the old
file or the new one, never a mix: the bytes go to a temporary name in the same
folder, are written out completely (a short write is continued) and fsynced, the
temporary file is renamed over the target, then the folder is fsynced so that
the rename itself survives a crash.  The new file is created 0600 unless the
caller says otherwise (the umask may only make it stricter); a symlink in its
place is refused, never replaced or written through.  A failure removes the
temporary file and leaves the old one as it was.

Used by the workspace (``state.json``; the journal shares :func:`write_all`), the
lab (configs, inventories, ack maps, boot reports) and the evidence archive.
Errors are plain :class:`OSError` (:class:`~vmigrate_lib.errors.PartialWrite` when
some bytes were written); callers convert them at their boundary.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
from pathlib import Path

from .errors import PartialWrite

__all__ = ["TMP_MARK", "write_all", "write_atomic"]

#: Part of every temporary file's name: ``.<name>.tmp-<pid>-<thread>-<random>``.
TMP_MARK = ".tmp-"


def write_all(fd: int, data: bytes, path: str | os.PathLike[str]) -> None:
    """Write every byte of ``data`` to ``fd``: a short write is continued; a write that
    fails or makes no progress raises :class:`PartialWrite` saying how far it got."""
    view = memoryview(data)
    total = len(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as exc:
            raise PartialWrite(exc.errno or errno.EIO, os.fspath(path), total - len(view),
                               total) from exc
        if n <= 0:
            raise PartialWrite(errno.EIO, os.fspath(path), total - len(view), total)
        view = view[n:]


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or a new name in ``folder`` durable (fsync of the folder itself)."""
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise  # else a file system that cannot fsync a folder: its rename is all we get
    finally:
        os.close(dfd)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (see the module's docstring); ``mode`` is the new
    file's permission bits before the umask."""
    target = Path(path)
    if target.is_symlink():
        raise OSError(errno.ELOOP, "refusing to replace a symbolic link", str(target))
    tmp = target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}-{threading.get_ident()}-"
                           f"{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            write_all(fd, data, tmp)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
