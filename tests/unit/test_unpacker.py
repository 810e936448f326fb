"""The write side of a stream (agent/unpacking.py): frames decoded on a pool, written in
frame order by a writer thread of its own, holes in their turn among them.

What these prove, in-process: the order of writes and holes, that the caller's loop never
writes (so it goes on reading the stream), that a failed write is raised by the next call
and nothing after it reaches the file, and that ``close`` returns only once a write under
way has ended (the descriptor is closed right after it).  The agent-level effect (the
relay goes on while a destination's write is held) is
tests/unit/test_relay_checkpoint.py's; the speed it buys at 1 Gbit/s is bench_seed's.
"""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.agent import unpacking

KiB = 1 << 10


def _zlib(data: bytes) -> tuple[int, bytes]:
    flag, compress, _dec = proto.CODECS["zlib"]
    return flag, compress(data, 1)


def test_frames_and_holes_are_written_in_order_off_the_callers_thread() -> None:
    caller = threading.get_ident()
    done: list[tuple[str, int, int]] = []
    threads: set[int] = set()

    def write(data: bytes, offset: int) -> None:
        threads.add(threading.get_ident())
        done.append(("data", offset, len(data)))

    def zeros(offset: int, n: int) -> None:
        threads.add(threading.get_ident())
        done.append(("zeros", offset, n))

    u = unpacking.Unpacker(write, workers=2, zeros=zeros)
    want = []
    try:
        for k in range(40):
            off = k * 64 * KiB
            if k % 5 == 4:
                u.hole(off, 64 * KiB)
                want.append(("zeros", off, 64 * KiB))
                continue
            data = os.urandom(32 * KiB) + bytes(32 * KiB)  # compresses: decoded on the pool
            flag, packed = _zlib(data) if k % 2 else (0, data)
            u.add(flag, packed, off)
            want.append(("data", off, len(data)))
        u.drain()
        assert done == want
        assert threads and caller not in threads, "the stream's loop wrote itself"
    finally:
        u.close()


def test_a_failed_write_is_raised_and_nothing_after_it_is_written() -> None:
    """ENOSPC at the third frame: the next call raises it (the agent answers ERR at the
    FLUSH with what was durable), and no later frame reaches the file."""
    done: list[int] = []

    def write(data: bytes, offset: int) -> None:
        if offset == 2 * 4096:
            raise OSError(errno.ENOSPC, "No space left on device")
        done.append(offset)

    u = unpacking.Unpacker(write, workers=2, zeros=lambda off, n: done.append(off))
    try:
        with pytest.raises(OSError) as err:
            for k in range(200):
                u.add(0, b"x" * 4096, k * 4096)
                time.sleep(0.001)
            u.drain()
        assert err.value.errno == errno.ENOSPC
        with pytest.raises(OSError):
            u.drain()  # raised again: the stream stays failed
        assert done == [0, 4096]
    finally:
        u.close()


def test_close_returns_once_the_write_under_way_has_ended() -> None:
    """The agent closes the file's descriptor right after ``close``: a write still under
    way then could land in another file given the same number."""
    began, ended = threading.Event(), threading.Event()

    def write(data: bytes, offset: int) -> None:
        began.set()
        time.sleep(0.3)
        ended.set()

    u = unpacking.Unpacker(write, workers=1)
    u.add(0, b"y" * 4096, 0)
    u.add(0, b"z" * 4096, 4096)  # dropped by close: the stream failed
    assert began.wait(5)
    u.close()
    assert ended.is_set()
