"""Proof that a disk holds what the guest acknowledged.

A scan reads every allocated area, finds our block headers (see
:mod:`.blockfmt`) and checks each block's CRC: a block that fails is torn or
corrupted.  Against an ack map, every acknowledged block must carry exactly its
acked sequence number (or a newer one, for an unclean map after a crash).  The
lab guest runs this as its boot check; the cutover tests run it on Bob's copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..extents import Extent
from .acks import AckMap
from .blockfmt import MAGIC, SECTOR, block_valid, parse_header
from .disk import allocated_extents

_CHUNK = 1 << 20
_KEEP = 50  #: problems listed per kind (counts are always complete)

Reader = Callable[[int, int], bytes]


@dataclass
class VerifyReport:
    """The outcome of checking one disk; ``ok`` says it all, the lists say why not."""

    disk_key: int | None
    path: str = ""
    blocks: int = 0  #: valid blocks with a header
    max_seq: int = 0
    torn: int = 0
    foreign: int = 0  #: valid blocks of another disk key (disks swapped?)
    acked: int = 0
    missing: int = 0  #: acked blocks with no valid header of ours
    wrong_seq: int = 0
    exact: bool = True
    samples: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.torn or self.foreign or self.missing or self.wrong_seq)

    def problems(self) -> list[str]:
        out = []
        for kind in ("torn", "foreign", "missing", "wrong_seq"):
            n = getattr(self, kind)
            if n:
                out.append(f"{n} {kind.replace('_', ' ')} block(s), e.g. {self.samples[kind][:5]}")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["problems"] = self.problems()
        return d

    def _note(self, kind: str, item: Any) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        bucket = self.samples.setdefault(kind, [])
        if len(bucket) < _KEEP:
            bucket.append(item)


def scan(read: Reader, extents: Iterable[Extent], report: VerifyReport) -> dict[int, int]:
    """Check every headed block in ``extents``; returns {byte offset: seq} of valid ones."""
    seqs: dict[int, int] = {}
    for start, length in extents:
        pos, end = start, start + length
        while pos < end:
            n = min(_CHUNK, end - pos)
            buf = read(pos, n)
            i = buf.find(MAGIC)
            while i >= 0:
                off = pos + i
                head = parse_header(buf, i) if off % SECTOR == 0 else None
                if head is None or head.block * head.block_size != off:
                    i = buf.find(MAGIC, i + 1)
                    continue
                if not block_valid(buf, i, head):
                    report._note("torn", off)
                elif report.disk_key is not None and head.disk_key != report.disk_key:
                    report._note("foreign", (off, head.disk_key))
                else:
                    report.blocks += 1
                    report.max_seq = max(report.max_seq, head.seq)
                    seqs[off] = head.seq
                i = buf.find(MAGIC, i + head.block_size)
            pos += n
    return seqs


def check(
    read: Reader,
    extents: Iterable[Extent],
    disk_key: int | None,
    acks: AckMap | None,
    *,
    exact: bool | None = None,
    path: str = "",
) -> VerifyReport:
    """Scan, then compare with ``acks``; ``exact`` defaults to the map's ``clean`` flag."""
    exact = (acks.clean if acks is not None else True) if exact is None else exact
    report = VerifyReport(disk_key=disk_key, path=path, exact=exact)
    seqs = scan(read, extents, report)
    if acks is not None:
        report.acked = len(acks.seqs)
        for index, want in acks.seqs.items():
            got = seqs.get(index * acks.block_size)
            if got is None:
                report._note("missing", index)
            elif got != want if exact else got < want:
                report._note("wrong_seq", (index, want, got))
    return report


def verify_copy(
    disk_path: Path | str,
    acks: AckMap | Path | str | None,
    *,
    disk_key: int | None = None,
    exact: bool | None = None,
) -> VerifyReport:
    """Check a flat disk file (e.g. Bob's copy) against an ack map (e.g. Alice's).

    ``disk_key`` defaults to the ack map's; blocks of another key count as foreign.
    """
    ackmap = acks if isinstance(acks, AckMap) or acks is None else AckMap.load(Path(acks))
    key = disk_key if disk_key is not None else (ackmap.disk_key if ackmap else None)
    try:
        fd = os.open(disk_path, os.O_RDONLY)
    except OSError as exc:
        raise LabError(f"cannot open disk {disk_path}: {exc}", path=str(disk_path)) from exc
    try:
        size = os.fstat(fd).st_size
        return check(
            lambda off, n: os.pread(fd, n, off),
            allocated_extents(fd, size),
            key,
            ackmap,
            exact=exact,
            path=str(disk_path),
        )
    finally:
        os.close(fd)
