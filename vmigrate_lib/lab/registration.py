"""Turning disk files copied into a folder into a registrable VM config (Bob at cutover).

The disks are matched to the source VM's disks by file name (same name as on
the source, or ``<name>-flat.vmdk`` / ``<name>_N-flat.vmdk``) and must have the
source's exact capacity: registering a VM on a half-made or wrong disk would
boot garbage.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from ..control.host import VmInfo
from ..errors import DiskMismatch, LabError
from .vmconfig import DiskConfig, VmConfig
from .workload import WorkloadSpec


def guest_ip_for(vm_uuid: str) -> str:
    """A stable fake guest IP per VM, as VMware Tools would report one."""
    h = hashlib.sha1(vm_uuid.encode()).digest()
    return f"10.77.{h[0]}.{h[1] % 253 + 1}"


def config_for_copy(
    vmdir: Path,
    name: str,
    source: VmInfo,
    network_map: Mapping[str, str] | None,
    workload: WorkloadSpec,
) -> VmConfig:
    """A new VM config (new uuid, CBT off, no snapshots) over the disks in ``vmdir``."""
    if not vmdir.is_dir():
        raise LabError(f"folder {vmdir} does not exist", folder=str(vmdir))
    disks = []
    for i, sd in enumerate(source.disks):
        own = f"{name}-flat.vmdk" if i == 0 else f"{name}_{i}-flat.vmdk"
        candidates = [os.path.basename(sd.path), own]
        found = next((c for c in candidates if (vmdir / c).is_file()), None)
        if found is None:
            raise DiskMismatch(
                f"disk {sd.label} of {source.name} is not in {vmdir.name}/",
                tried=candidates,
                disk_key=sd.key,
            )
        size = (vmdir / found).stat().st_size
        if size != sd.capacity:
            raise DiskMismatch(
                f"{found} has {size} bytes, {source.name}'s {sd.label} has {sd.capacity}",
                file=found,
                size=size,
                capacity=sd.capacity,
            )
        disks.append(DiskConfig(sd.key, sd.label, found, sd.capacity))
    vm_uuid = str(uuid.uuid4())
    nets = list((network_map or {}).values()) or ["VM Network"]
    return VmConfig(
        name=name,
        uuid=vm_uuid,
        disks=disks,
        workload=workload,
        cbt_enabled=False,
        networks=nets,
        guest_ip=guest_ip_for(vm_uuid),
    )
