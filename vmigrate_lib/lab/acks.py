"""The guest's ack map: for each block it wrote, the sequence number it acknowledged.

Persisted (atomically, after an fsync of the disks) every ``ack_interval`` and
exactly at a clean shutdown, beside the disks as ``acks-<disk key>.bin``.  A
``clean`` map is the guest's final state, so a copy must match it exactly; an
unclean one (hard power-off) is a lower bound: blocks may have newer writes.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from ..atomicfile import write_atomic
from ..errors import LabError

_MAGIC = b"VMLACK01"
_HEAD = struct.Struct("<8sIIBxxxQ")


def ack_path(vmdir: Path, disk_key: int) -> Path:
    return vmdir / f"acks-{disk_key}.bin"


@dataclass
class AckMap:
    disk_key: int
    block_size: int
    clean: bool = False
    seqs: dict[int, int] = field(default_factory=dict)  #: block index -> last acked seq

    @property
    def max_seq(self) -> int:
        return max(self.seqs.values(), default=0)

    def to_bytes(self) -> bytes:
        flat = array("Q")
        for index in sorted(self.seqs):
            flat.append(index)
            flat.append(self.seqs[index])
        if flat.itemsize != 8:  # pragma: no cover - every platform we run on
            raise LabError("unsupported platform: array('Q') is not 64-bit")
        if struct.pack("=H", 1) != struct.pack("<H", 1):  # pragma: no cover
            flat.byteswap()
        head = _HEAD.pack(_MAGIC, self.disk_key, self.block_size, int(self.clean), len(self.seqs))
        return head + flat.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes, source: str = "") -> AckMap:
        if len(raw) < _HEAD.size or raw[:8] != _MAGIC:
            raise LabError(f"ack map {source} is not an ack map", path=source)
        _, key, bs, clean, count = _HEAD.unpack_from(raw)
        body = raw[_HEAD.size :]
        if len(body) != 16 * count:
            raise LabError(f"ack map {source} is truncated", path=source, count=count)
        flat = array("Q")
        flat.frombytes(body)
        if struct.pack("=H", 1) != struct.pack("<H", 1):  # pragma: no cover
            flat.byteswap()
        seqs = dict(zip(flat[0::2], flat[1::2]))
        return cls(key, bs, bool(clean), seqs)

    def save(self, path: Path) -> None:
        write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> AckMap:
        try:
            return cls.from_bytes(path.read_bytes(), str(path))
        except FileNotFoundError as exc:
            raise LabError(f"ack map {path} is missing", path=str(path)) from exc
