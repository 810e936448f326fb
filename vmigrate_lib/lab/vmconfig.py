"""A lab VM's configuration file (``<vm>.vmx.json``): the lab's ``.vmx``.

It is the single source of truth for a VM's disks, workload, change-tracking
flag and snapshots, so that a sync in one process and a cutover in another
(tomorrow) see the same VM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabError
from .layout import atomic_write_json, read_json
from .workload import WorkloadSpec

#: Snapshot states: ``active`` (base frozen, delta in use), ``removing`` (consolidating).
SNAP_ACTIVE = "active"
SNAP_REMOVING = "removing"


@dataclass
class DiskConfig:
    key: int
    label: str
    file: str  #: flat file name inside the VM folder
    capacity: int


@dataclass
class SnapshotRecord:
    id: str
    name: str
    created: float
    description: str = ""
    change_ids: dict[int, str] = field(default_factory=dict)
    state: str = SNAP_ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "description": self.description,
            "change_ids": {str(k): v for k, v in self.change_ids.items()},
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SnapshotRecord:
        return cls(
            id=str(d["id"]),
            name=str(d["name"]),
            created=float(d["created"]),
            description=str(d.get("description", "")),
            change_ids={int(k): str(v) for k, v in d.get("change_ids", {}).items()},
            state=str(d.get("state", SNAP_ACTIVE)),
        )


@dataclass
class VmConfig:
    name: str
    uuid: str
    disks: list[DiskConfig]
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    cbt_enabled: bool = False
    snapshots: list[SnapshotRecord] = field(default_factory=list)
    networks: list[str] = field(default_factory=lambda: ["VM Network"])
    guest_ip: str = ""
    snapshot_counter: int = 0
    #: VMware Tools run in the guest: it answers a guest shutdown and reports its IP.
    #: False plays an appliance or a guest without open-vm-tools.
    tools: bool = True

    def disk(self, key: int) -> DiskConfig:
        for d in self.disks:
            if d.key == key:
                return d
        raise LabError(f"VM {self.name} has no disk with key {key}", vm=self.name, disk_key=key)

    def snapshot(self, snapshot_id: str) -> SnapshotRecord | None:
        return next((s for s in self.snapshots if s.id == snapshot_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "disks": [vars(d).copy() for d in self.disks],
            "workload": self.workload.to_dict(),
            "cbt_enabled": self.cbt_enabled,
            "snapshots": [s.to_dict() for s in self.snapshots],
            "networks": list(self.networks),
            "guest_ip": self.guest_ip,
            "snapshot_counter": self.snapshot_counter,
            "tools": self.tools,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VmConfig:
        try:
            return cls(
                name=str(d["name"]),
                uuid=str(d["uuid"]),
                disks=[
                    DiskConfig(int(x["key"]), str(x["label"]), str(x["file"]), int(x["capacity"]))
                    for x in d["disks"]
                ],
                workload=WorkloadSpec.from_dict(d.get("workload", {})),
                cbt_enabled=bool(d.get("cbt_enabled", False)),
                snapshots=[SnapshotRecord.from_dict(s) for s in d.get("snapshots", [])],
                networks=[str(n) for n in d.get("networks", [])],
                guest_ip=str(d.get("guest_ip", "")),
                snapshot_counter=int(d.get("snapshot_counter", 0)),
                tools=bool(d.get("tools", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"VM config is malformed: {exc!r}") from exc

    @classmethod
    def load(cls, path: Path) -> VmConfig:
        try:
            return cls.from_dict(read_json(path))
        except FileNotFoundError as exc:
            raise LabError(f"VM config {path} is missing", path=str(path)) from exc

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())
