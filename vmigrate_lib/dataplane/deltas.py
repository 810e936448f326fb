"""What a frozen snapshot delta holds, as the agent's reader reports it (snapshot-delta mode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentError, DeltaFormatUnknown
from ..extents import Extent

#: formats the agent's ``deltaformats`` reader knows (VMFS-6, VMFS-5)
DELTA_FORMATS = ("seSparse", "vmfsSparse")


@dataclass(frozen=True)
class DeltaExtents:
    """The guest areas a delta file changed: ``data`` grains hold bytes, ``zero`` grains
    read as zeros (unmapped or zeroed by the guest); both are changes to copy."""

    path: str
    format: str
    capacity: int
    grain: int
    data: list[Extent] = field(default_factory=list)
    zero: list[Extent] = field(default_factory=list)

    @property
    def changed(self) -> list[Extent]:
        """Every changed area, sorted (data and zero alike)."""
        return sorted(self.data + self.zero)

    @property
    def changed_bytes(self) -> int:
        return sum(e.length for e in self.data) + sum(e.length for e in self.zero)

    @classmethod
    def from_answer(cls, path: str, answer: dict[str, Any]) -> DeltaExtents:
        """The agent's ``delta_extents`` answer, checked (an unknown format is an error)."""
        fmt = str(answer.get("format"))
        if fmt not in DELTA_FORMATS:
            raise DeltaFormatUnknown(f"{path}: the agent reports delta format {fmt!r}",
                                     path=path, format=fmt)
        data: list[Extent] = []
        zero: list[Extent] = []
        for off, length, kind in answer["extents"]:
            if kind not in ("data", "zero"):
                raise AgentError(f"{path}: unknown grain kind {kind!r} in the agent's answer",
                                 path=path)
            (data if kind == "data" else zero).append(Extent(int(off), int(length)))
        return cls(path, fmt, int(answer["capacity"]), int(answer["grain"]), data, zero)
