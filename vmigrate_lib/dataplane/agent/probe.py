"""What the served folder's file system really does, probed once at HELLO.

Neither ``SEEK_DATA`` nor hole punching is known to work on every datastore
(VMFS through the ESXi userworld, NFS): a file system without them reports the
whole file as data, and a punch that fails leaves zeros written instead.  So the
agent tries both on a small temporary file (write, leave a hole, seek, punch, read
back) and says what it found in HELLO; preflight prints it and sizes the space
check on it.  Also whether ``vmkfstools`` (ESXi's disk tool) is on PATH.

Python 3.5 compatible, stdlib only.
"""

import errno
import os
import shutil
import tempfile

from .sparse import punch_hole

#: size of each region of the probe file (VMFS6 allocates in 1 MiB file blocks)
BLOCK = 1024 * 1024


def _seek_data_works(fd):
    """True when SEEK_DATA skips the hole at [BLOCK, 2*BLOCK); False when the system
    reports it as data or has no SEEK_DATA."""
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return False
    try:
        return os.lseek(fd, BLOCK, seek_data) == 2 * BLOCK
    except OSError:
        return False


def _punch_works(fd):
    """True when punching [2*BLOCK, 3*BLOCK) frees its blocks and it reads back zeros."""
    before = os.fstat(fd).st_blocks
    if not punch_hole(fd, 2 * BLOCK, BLOCK):
        return False
    os.fsync(fd)
    zero = os.pread(fd, BLOCK, 2 * BLOCK) == bytes(BLOCK)
    return zero and os.fstat(fd).st_blocks < before


def probe_storage(root):
    """{"seek_data", "punch_hole": bool or None (could not probe), "vmkfstools": path or
    "", "error": why not probed}.  The temporary file is removed whatever happens."""
    out = {"seek_data": None, "punch_hole": None, "vmkfstools": shutil.which("vmkfstools") or ""}
    try:
        fd, path = tempfile.mkstemp(prefix=".vmigrate-probe-", dir=root)
    except OSError as exc:
        out["error"] = "cannot create a file in {}: {}".format(root, exc.strerror or exc)
        return out
    try:
        data = b"\x5a" * BLOCK
        os.pwrite(fd, data, 0)
        os.pwrite(fd, data, 2 * BLOCK)
        os.fsync(fd)
        out["seek_data"] = _seek_data_works(fd)
        out["punch_hole"] = _punch_works(fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
            raise
        out["error"] = "probe failed: {}".format(exc.strerror or exc)
    finally:
        os.close(fd)
        try:
            os.remove(path)
        except OSError:
            pass
    return out
