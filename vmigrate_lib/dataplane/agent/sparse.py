"""Sparse files: allocated regions (SEEK_DATA), zero grains, holes punched, full writes."""

import errno
import os

from .protocol import DATA, HOLE, LENGTH, ZERO_GRAIN


def data_regions(fd, start, end):
    """Allocated [start, length] regions of a file between start and end (all of it
    where the system has no SEEK_DATA)."""
    seek_data, seek_hole = getattr(os, "SEEK_DATA", None), getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        return [[start, end - start]] if end > start else []
    out = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return [[start, end - start]]  # no hole support: all data
            raise
        if data >= end:
            break
        hole = min(os.lseek(fd, data, seek_hole), end)
        out.append([data, hole - data])
        pos = hole
    return out


def data_and_holes(fd, start, end):
    """Yield ("data"|"hole", start, length) covering [start, end) exactly."""
    pos = start
    for s, n in data_regions(fd, start, end):
        if s > pos:
            yield ("hole", pos, s - pos)
        yield ("data", s, n)
        pos = s + n
    if pos < end:
        yield ("hole", pos, end - pos)


def pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


_PUNCH = None


def _punch_hole_func():
    """fallocate(PUNCH_HOLE|KEEP_SIZE) through ctypes where libc has it."""
    global _PUNCH
    if _PUNCH is None:
        _PUNCH = False
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            func = libc.fallocate
            func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            _PUNCH = func
        except (OSError, AttributeError, ImportError):  # no ctypes on a trimmed Python
            _PUNCH = False
    return _PUNCH


def punch_hole(fd, offset, length):
    """fallocate(KEEP_SIZE | PUNCH_HOLE); False where the system or file system cannot."""
    punch = _punch_hole_func()
    return bool(punch) and punch(fd, 0x01 | 0x02, offset, length) == 0


def is_thick(st):
    """A file allocated over its whole size (a thick disk from ``vmkfstools``)."""
    return st.st_size > 0 and st.st_blocks * 512 >= st.st_size


def write_zeros(fd, offset, length):
    """Make [offset, offset+length) read as zeros: punch a hole, or write zeros.

    Zeros are written only over what does not read as zeros already: a thick file
    stays thick (no hole is punched in it, a fresh zeroed thick disk is not rewritten),
    and a thin file whose file system cannot punch holes (VMFS through ESXi's userworld
    may not: real-esxi F6; VMFS reclaims space offline, ``vmkfstools -K``) is not
    inflated by a seed's holes, which land on areas never written."""
    st = os.fstat(fd)
    if offset + length > st.st_size:
        os.ftruncate(fd, offset + length)
    if not is_thick(st) and punch_hole(fd, offset, length):
        return
    zero = bytes(min(length, 1 << 20))
    for kind, start, n in data_and_holes(fd, offset, offset + length):
        if kind == "data":
            _zero_unless_zero(fd, start, start + n, zero)


def _zero_unless_zero(fd, pos, end, zero):
    while pos < end:
        n = min(len(zero), end - pos)
        if os.pread(fd, n, pos) != zero[:n]:
            pwrite_all(fd, zero[:n], pos)
        pos += n



def split_zero_grains(buf, pos, zero, emit, stats):
    """Emit ``buf`` as DATA runs, with all-zero 64 KiB grains as HOLE frames."""
    n = len(buf)
    i = run_start = 0
    run_zero = None
    runs = []
    while i < n:
        g = min(ZERO_GRAIN, n - i)
        is_zero = buf[i:i + g] == (zero if g == ZERO_GRAIN else bytes(g))
        if run_zero is None:
            run_zero = is_zero
        elif is_zero != run_zero:
            runs.append((run_start, i, run_zero))
            run_start = i
            run_zero = is_zero
        i += g
    if run_zero is not None:
        runs.append((run_start, n, run_zero))
    for a, b, is_zero in runs:
        if is_zero:
            emit(HOLE, LENGTH.pack(b - a), pos + a)
            stats["holes"] += b - a
        else:
            emit(DATA, buf[a:b] if (a or b != n) else buf, pos + a)
            stats["sent"] += b - a
