"""The wave run's state: typed, versioned, sealed with a digest, written atomically.

``<wave_dir>/state.json`` says where each VM stands, so that a killed wave run resumes:
a VM that was syncing or warm syncs again (its workspace resumes the copy), one that was
cutting over runs its cutover again (the cutover resumes from its recorded step), one
that is over stays over.  ``started_at`` fixes the wave's clock, so relative windows
mean the same after a resume.  The wave's journal (``journal.jsonl``, the engine's
append-only :class:`~vmigrate_lib.engine.workspace.Journal`) records every phase of
every VM with its time: the peak in flight is read from it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..atomicfile import write_atomic
from ..errors import WaveStateCorrupt

VERSION = 1
VmStatus = Literal["pending", "syncing", "warm", "cutover", "done", "failed", "rolled_back",
                   "needs_operator", "window_missed"]
STATUSES: tuple[str, ...] = ("pending", "syncing", "warm", "cutover", "done", "failed",
                             "rolled_back", "needs_operator", "window_missed")
#: a VM in one of these holds a slot
IN_FLIGHT: frozenset[str] = frozenset({"syncing", "warm", "cutover"})
#: a VM in one of these is over: it never runs again in this wave ("window_missed": synced,
#: its window ended before its cutover could start; nothing was powered off)
OVER: frozenset[str] = frozenset({"done", "failed", "rolled_back", "needs_operator",
                                  "window_missed"})


@dataclass
class VmRun:
    """One VM's progress in the wave."""

    status: VmStatus = "pending"
    started: float | None = None  #: its seed's start (epoch)
    ready: float | None = None  #: its sync runbook converged
    ended: float | None = None
    error: str = ""
    evidence: list[str] = field(default_factory=list)  #: the runbooks' evidence folders
    warm_cycles: int = 0
    downtime_s: float | None = None
    predicted_s: float | None = None

    @classmethod
    def from_json(cls, raw: Any, where: str, path: Path) -> VmRun:
        if not isinstance(raw, dict) or raw.get("status") not in STATUSES:
            raise WaveStateCorrupt(f"wave state {path}: {where} is malformed", path=str(path))
        try:
            return cls(**raw)
        except TypeError as exc:
            raise WaveStateCorrupt(f"wave state {path}: {where} has unknown fields",
                                   path=str(path)) from exc


@dataclass
class WaveState:
    wave: str
    started_at: float
    file_digest: str
    vms: dict[str, VmRun]
    version: int = VERSION
    updated: float = 0.0

    def body(self) -> dict[str, Any]:
        return {"version": self.version, "wave": self.wave, "started_at": self.started_at,
                "file_digest": self.file_digest, "updated": self.updated,
                "vms": {k: asdict(v) for k, v in sorted(self.vms.items())}}


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save(path: Path, state: WaveState) -> None:
    state.updated = time.time()
    body = state.body()
    data = json.dumps({**body, "digest": _digest(body)}, indent=1, sort_keys=True).encode()
    write_atomic(path, data + b"\n")


def load(path: Path) -> WaveState | None:
    """The state, None if there is none; :class:`WaveStateCorrupt` (one line, exit 2) for a
    torn, edited, wrongly typed or newer file."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WaveStateCorrupt(f"wave state {path} is not readable JSON",
                               path=str(path)) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("version"), int):
        raise WaveStateCorrupt(f"wave state {path} has no version", path=str(path))
    if raw["version"] > VERSION:
        raise WaveStateCorrupt(f"wave state {path} is version {raw['version']}, newer than "
                               f"this vmigrate's {VERSION}", hint="run a newer vmigrate",
                               path=str(path))
    digest = raw.pop("digest", None)
    if digest != _digest(raw):
        raise WaveStateCorrupt(f"wave state {path} was changed outside vmigrate (digest "
                               "mismatch)", path=str(path))
    vms = raw.get("vms")
    if not isinstance(vms, dict) or not isinstance(raw.get("wave"), str):
        raise WaveStateCorrupt(f"wave state {path} is malformed", path=str(path))
    return WaveState(raw["wave"], float(raw["started_at"]), str(raw["file_digest"]),
                     {str(k): VmRun.from_json(v, f"vms.{k}", path) for k, v in vms.items()},
                     raw["version"], float(raw.get("updated", 0.0)))
