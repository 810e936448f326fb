"""The destination's block digests, remembered between hash-compare cycles (issue 12 item 3).

A hash-compare cycle digests the source where it lives and compares with the
destination's digests.  After the cycle copied every differing block, the
destination's digests *are* the source's, so they are kept in the workspace
(``digests/disk-<key>.digests``) and the next cycle reads only the source; the
destination is re-read only by a certify (and by a cycle that cannot trust the
map).

A map is used only when all of these hold, else both sides are read (and why is
journaled, ``digest_map_unused``):

* it parses, its ``version`` is known and its SHA-256 (over header and digests)
  matches: a torn or edited file is never trusted;
* it is for this disk, source file, destination file, algorithm, block size and
  capacity;
* it was made by the cycle the state last committed for this disk
  (``cycle == last_cycle``): a map is written *before* its cycle copies, so a
  cycle that failed or was killed (not committed) leaves a map nobody uses;
* the disk is neither untrusted nor marked for a recheck ("untrusted wins").

Every other path that writes a destination disk (a tracked or seed copy, a
certify repair) forgets the map first (:func:`forget`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..atomicfile import write_atomic
from ..errors import DigestMapInvalid

DIGESTMAP_VERSION = 1
_MAGIC = b"VMDIGESTS"


@dataclass(frozen=True)
class MapKey:
    """What a map must match to stand for a destination disk."""

    disk: int
    source: str
    dest: str
    algorithm: str
    block: int
    size: int

    def blocks(self) -> int:
        return -(-self.size // self.block)


@dataclass(frozen=True)
class DigestMap:
    """The destination's digests of every block of ``[0, size)``, as cycle ``cycle`` left them."""

    key: MapKey
    cycle: int
    digest_len: int
    digests: bytes

    def digest(self, index: int) -> bytes:
        return self.digests[index * self.digest_len : (index + 1) * self.digest_len]

    def root(self) -> str:
        """SHA-256 over the block digests in order (as :class:`CompareResult` roots)."""
        return hashlib.sha256(self.digests).hexdigest()

    def to_bytes(self) -> bytes:
        head = {"version": DIGESTMAP_VERSION, "disk": self.key.disk, "source": self.key.source,
                "dest": self.key.dest, "algorithm": self.key.algorithm, "block": self.key.block,
                "size": self.key.size, "cycle": self.cycle, "digest_len": self.digest_len}
        body = json.dumps(head, sort_keys=True).encode()
        seal = hashlib.sha256(body + b"\n" + self.digests).hexdigest().encode()
        return _MAGIC + b" " + seal + b"\n" + body + b"\n" + self.digests

    @classmethod
    def from_bytes(cls, raw: bytes, path: str) -> DigestMap:
        """Parse and check a map file; anything wrong is :class:`DigestMapInvalid`."""
        magic, _, rest = raw.partition(b" ")
        seal, _, rest = rest.partition(b"\n")
        body, sep, digests = rest.partition(b"\n")
        if magic != _MAGIC or not sep:
            raise DigestMapInvalid(f"{path} is not a digest map", path=path)
        if hashlib.sha256(body + b"\n" + digests).hexdigest().encode() != seal:
            raise DigestMapInvalid(f"{path} does not match its SHA-256 (torn or edited)", path=path)
        try:
            head = json.loads(body)
            if head["version"] != DIGESTMAP_VERSION:
                raise DigestMapInvalid(f"{path} has version {head['version']!r}, this vmigrate "
                                       f"knows {DIGESTMAP_VERSION}", path=path)
            key = MapKey(int(head["disk"]), str(head["source"]), str(head["dest"]),
                         str(head["algorithm"]), int(head["block"]), int(head["size"]))
            out = cls(key, int(head["cycle"]), int(head["digest_len"]), digests)
        except (ValueError, KeyError, TypeError) as exc:
            raise DigestMapInvalid(f"{path} has a malformed header: {exc!r}", path=path) from exc
        if key.block <= 0 or out.digest_len <= 0 or len(digests) != key.blocks() * out.digest_len:
            raise DigestMapInvalid(f"{path} holds {len(digests)} bytes of digests, not "
                                   f"{key.blocks()} blocks", path=path)
        return out


class DigestStore:
    """The maps of one workspace, one file per destination disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, disk: int) -> Path:
        return self.folder / f"disk-{disk}.digests"

    def load(self, want: MapKey, last_cycle: int) -> DigestMap:
        """The map for ``want`` made by cycle ``last_cycle``, or :class:`DigestMapInvalid`
        saying why it cannot be used."""
        path = self.path(want.disk)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DigestMapInvalid("no destination digests remembered", path=str(path)) from None
        found = DigestMap.from_bytes(raw, str(path))
        if found.key != want:
            raise DigestMapInvalid(f"the remembered digests are for {found.key}, not {want}",
                                   path=str(path))
        if found.cycle != last_cycle:
            raise DigestMapInvalid(
                f"the remembered digests are from cycle {found.cycle}, the destination was "
                f"last committed by cycle {last_cycle}", path=str(path))
        return found

    def save(self, digest_map: DigestMap) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        write_atomic(self.path(digest_map.key.disk), digest_map.to_bytes(), mode=0o600)

    def forget(self, disk: int) -> None:
        """The destination disk is about to change by another path: no map stands for it."""
        with contextlib.suppress(FileNotFoundError):
            self.path(disk).unlink()
