"""The datastore over SSH: compression, bounded reconnects, resumable streams."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from ...errors import AgentError, AgentFileUnsafe, TransportError
from ...extents import Extent
from ..agent import protocol as proto
from ..client import AgentDatastore
from ..datastore import BlockDigest, Chunk, Datastore, ExtentWriter
from .agentfile import REFUSED
from .transport import SshTransport
from .writer import ResilientWriter

log = logging.getLogger("vmigrate.ssh")

#: Operations safe to repeat after a lost connection (no effect, or the same effect).
IDEMPOTENT_OPS = frozenset(
    {"ping", "statfs", "stat", "listdir", "makedirs", "read_file", "allocated", "remove",
     "grow_disk", "probe_peer"}
)


def _remaining(extents: list[Extent], k: int, offset: int, end: int) -> tuple[list[Extent], int]:
    """Cut what a stream has delivered ([offset, end) of the extent at or after k) off the list."""
    while k < len(extents) and not (extents[k].start <= offset < extents[k].start + extents[k].length):
        k += 1
    if k == len(extents):
        return extents, k
    e = extents[k]
    e_end = e.start + e.length
    if end >= e_end:
        return extents, k + 1
    extents[k] = Extent(end, e_end - end)
    return extents, k


_END = object()


def _prefetch(gen: Iterator[Chunk], limit: int) -> Iterator[Chunk]:
    """Run ``gen`` in a thread, up to ``limit`` bytes ahead of the consumer.

    In relay mode this overlaps receiving from the source with sending to the
    destination (socket waits and crypto release the GIL).  Exceptions travel
    to the consumer; closing the consumer stops the thread.
    """
    if limit <= 0:
        yield from gen
        return
    import queue

    q: queue.Queue[Any] = queue.Queue()
    room = threading.Semaphore(max(2, limit // (1 << 20)))
    stop = threading.Event()

    def run() -> None:
        try:
            for c in gen:
                while not room.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                q.put(c)
            q.put(_END)
        except BaseException as exc:
            q.put(exc)
        finally:
            if stop.is_set():
                close = getattr(gen, "close", None)
                if close is not None:
                    close()

    t = threading.Thread(target=run, name="vmigrate-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            room.release()
            yield item
    finally:
        stop.set()
        t.join()


class SshAgentDatastore(AgentDatastore):
    """An :class:`AgentDatastore` over SSH with compression, reconnects and direct mode."""

    transport: SshTransport
    prefetch_bytes = 32 * 1024 * 1024  #: read-ahead of a read stream (0: none)

    def __init__(self, name: str, transport: SshTransport) -> None:
        super().__init__(name, transport)
        self.settings = transport.settings
        self.reconnects = 0
        self.codec: str | None = None
        self.events: list[dict[str, Any]] = []  #: reconnects and resumes, for the journal
        self.direct_ok: dict[tuple[str, int], bool] = {}  #: auto mode: probe result per peer

    # --- connection and framing ----------------------------------------------------
    def _connect(self) -> tuple[IO[bytes], IO[bytes]]:
        fresh = self._r is None or self._busy
        try:
            r, w = super()._connect()
        except TransportError as exc:
            if self.transport.last_exit == REFUSED:
                # the launcher refused the agent file (owner, mode or digest): never run
                why = self.transport.stderr_text().splitlines()
                raise AgentFileUnsafe(
                    f"{(why[-1] if why else 'refusing the agent file').removeprefix('vmigrate: ')}"
                    f" on {self.settings.host}", host=self.settings.host, datastore=self.name,
                ) from exc
            if self.transport.last_exit not in (None, -1):
                # the agent ran and refused to serve (bad root, old python): not a
                # network fault, so no reconnect would help
                raise AgentError(
                    f"the agent on {self.settings.host} could not start: {exc.message}",
                    hint="check the datastore folder and python3 on the host",
                    datastore=self.name, host=self.settings.host,
                ) from exc
            raise
        if fresh:
            offered = self.hello.get("compression", [])
            want = self.settings.compress
            if want == "auto":
                self.codec = "zstd" if "zstd" in offered and "zstd" in proto.CODECS else (
                    "zlib" if "zlib" in offered else None)
            elif want and want in offered and want in proto.CODECS:
                self.codec = want
            else:
                self.codec = None
        return r, w

    def _stream(self, request: dict[str, Any]) -> Iterator[tuple[int, bytes, int]]:
        if request.get("op") == "read":
            self._connect()
            if self.codec:
                request = {**request, "compress": self.codec}
                if self.settings.compress_level is not None:
                    request["level"] = self.settings.compress_level
        return super()._stream(request)

    def _pause(self, attempt: int, exc: BaseException, what: str) -> None:
        """Back off before reconnect ``attempt`` (1-based), or give up past the limit."""
        s = self.settings
        if attempt > s.retries:
            if s.retries:
                raise TransportError(
                    f"{what} on datastore {self.name}: gave up after {s.retries} reconnects ({exc})",
                    datastore=self.name, transport=self.transport.description,
                ) from exc
            raise exc
        pause = min(s.backoff * 2 ** (attempt - 1), s.backoff_max)
        self.reconnects += 1
        self.events.append({"event": "reconnect", "what": what, "attempt": attempt,
                            "pause": pause, "error": str(exc), "at": time.time()})
        log.warning("%s on %s: %s; reconnect %d/%d in %.1f s", what, self.name, exc, attempt,
                    s.retries, pause)
        time.sleep(pause)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return super().call(op, **args)
            except TransportError as exc:
                if op not in IDEMPOTENT_OPS and not (op == "write_file" and not args.get("exclusive")):
                    raise
                attempt += 1
                self._pause(attempt, exc, f"{op} lost its connection")

    def close(self) -> None:
        """Say goodbye to the agent (if it is still there), then close the SSH connection."""
        try:
            super().close()
        finally:
            self.transport.shutdown()

    # --- resumable streams ------------------------------------------------------------
    def read_extents(self, path: str, extents: Iterable[Extent]) -> Iterator[Chunk]:
        """Read stream that resumes after its last delivered chunk when the connection breaks."""
        remaining = [Extent(e.start, e.length) for e in extents]
        k = 0
        summary = {"sent": 0, "holes": 0, "read": 0}
        attempt = 0
        while True:
            got = {"sent": 0, "holes": 0}
            try:
                for chunk in _prefetch(super().read_extents(path, remaining[k:]), self.prefetch_bytes):
                    yield chunk
                    got["holes" if chunk.data is None else "sent"] += chunk.length
                    remaining, k = _remaining(remaining, k, chunk.offset, chunk.offset + chunk.length)
                    attempt = 0
                for key in summary:
                    summary[key] += int(self.last_summary.get(key, 0))
                self.last_summary = summary
                return
            except TransportError as exc:
                summary["sent"] += got["sent"]
                summary["holes"] += got["holes"]
                summary["read"] += got["sent"]
                attempt += 1
                self._pause(attempt, exc, "read stream lost its connection")
                self.events.append({"event": "resume", "what": "read", "path": path,
                                    "extents_left": len(remaining) - k})

    def hash_blocks(
        self, path: str, block_size: int, algorithm: str, extents: Iterable[Extent] | None = None
    ) -> Iterator[BlockDigest]:
        """Hash stream that resumes after its last delivered block when the connection breaks."""
        if extents is None:
            st = self.stat(path)
            remaining = [Extent(0, st.size)] if st is not None else []
            if st is None:  # let the agent report the missing file
                yield from super().hash_blocks(path, block_size, algorithm, None)
                return
        else:
            remaining = [Extent(e.start, e.length) for e in extents]
        k = 0
        attempt = 0
        while True:
            try:
                for d in super().hash_blocks(path, block_size, algorithm, remaining[k:]):
                    yield d
                    remaining, k = _remaining(remaining, k, d.offset, d.offset + d.length)
                    attempt = 0
                return
            except TransportError as exc:
                attempt += 1
                self._pause(attempt, exc, "hash stream lost its connection")

    def open_writer(self, path: str) -> ExtentWriter:
        return ResilientWriter(self, path)

    # --- direct mode (see .direct) -------------------------------------------------
    def probe_direct(self, dst: Datastore) -> tuple[bool, str]:
        """Can this host reach ``dst``'s host over SSH and start its agent there?"""
        from .direct import probe_direct

        return probe_direct(self, dst)

    def transfer_modes(self, dst: Datastore) -> dict[str, Any]:
        """For preflight (duck-typed): the requested mode and which data paths work.

        ``{"requested": "relay"|"direct"|"auto", "relay": (ok, why), "direct": (ok, why)}``;
        changes nothing (the direct probe starts and stops an agent on the peer).
        """
        from .direct import check_modes

        out: dict[str, Any] = {"requested": self.settings.mode}
        for c in check_modes(self, dst):
            out[c.mode] = (c.ok, c.detail)
        return out

    def push_extents(
        self,
        src_path: str,
        dst: Datastore,
        dst_path: str,
        extents: Sequence[Extent],
        *,
        checkpoint_bytes: int = 64 * 1024 * 1024,
        on_checkpoint: Callable[[int], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, int] | None:
        """Direct mode when in use for this pair (the copier looks for this method), else None."""
        from .direct import push_extents

        return push_extents(self, src_path, dst, dst_path, extents,
                            checkpoint_bytes=checkpoint_bytes, on_checkpoint=on_checkpoint,
                            on_progress=on_progress)
