"""Bytes over an exec channel: large raw reads and packet-sized writes, a shared rate cap."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

from .paramiko_lazy import paramiko


class RateLimiter:
    """Token bucket shared by a connection's reader and writer (bytes per second).

    Idle time earns at most ``burst`` seconds of credit, so a cap holds over
    any window longer than that.
    """

    def __init__(self, rate: float, burst: float = 0.25) -> None:
        self.rate = float(rate)
        self.burst = self.rate * burst
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._tokens = 0.0

    def consume(self, n: int) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - n
            self._last = now
            debt = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if debt > 0:
            time.sleep(debt)


# --------------------------------------------------------------------------- channel I/O


class ChannelReader(io.RawIOBase):
    """Raw reads from an exec channel in large calls (buffered above by BufferedReader)."""

    def __init__(self, chan: paramiko.Channel, read_size: int, limiter: RateLimiter | None) -> None:
        super().__init__()
        self.chan = chan
        self.read_size = read_size
        self.limiter = limiter

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.chan.recv(min(len(buf), self.read_size))
        n = len(data)
        buf[:n] = data
        if self.limiter is not None:
            self.limiter.consume(n)
        return n


class ChannelWriter(io.RawIOBase):
    """Raw writes to an exec channel (buffered above by BufferedWriter)."""

    def __init__(self, chan: paramiko.Channel, limiter: RateLimiter | None) -> None:
        super().__init__()
        self.chan = chan
        self.limiter = limiter

    def writable(self) -> bool:
        return True

    def write(self, buf: Any) -> int:
        # paramiko's sendall() re-slices the remaining bytes after every packet
        # (quadratic copying for large buffers): hand it one packet at a time.
        n = len(buf)
        if self.limiter is not None:
            self.limiter.consume(n)
        view = memoryview(buf).cast("B")
        step = max(self.chan.out_max_packet_size - 64, 4096)
        send = self.chan.send
        pos = 0
        while pos < n:
            try:
                sent = send(view[pos : pos + step].tobytes())
            except EOFError as exc:  # paramiko's word for a transport that died mid-send
                raise BrokenPipeError("SSH connection closed while sending") from exc
            if sent == 0:
                raise OSError("SSH channel closed")
            pos += sent
        return n

