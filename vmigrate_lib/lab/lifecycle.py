"""Bringing a lab up and down, and describing it: the default rehearsal stage.

``lab_up`` builds two hosts (``esx-a``, ``esx-b``), each with ``datastore1``, and
Alice on esx-a: two sparse disks partly filled with real blocks, CBT on,
powered on and writing her workload.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabError, ParameterError
from .acks import AckMap, ack_path
from .blockfmt import make_block
from .ctk import ChangeTracker
from .disk import VirtualDisk, ctk_path
from .guestctl import call
from .handle import VmHandle
from .inventory import Inventory
from .layout import VMX_SUFFIX, LabLayout, default_root
from .power import guest_pid, kill_guest, wait_dead
from .vmconfig import DiskConfig, VmConfig
from .workload import WorkloadSpec

DEFAULT_HOSTS = ("esx-a", "esx-b")
DEFAULT_DATASTORE = "datastore1"
DEFAULT_DISKS = (1 << 30, 512 << 20)
_RUN = 1 << 20  #: prefill writes runs of 1 MiB


def create_vm(
    layout: LabLayout,
    host: str,
    datastore: str,
    name: str,
    disk_sizes: Sequence[int],
    *,
    cbt: bool = True,
    workload: WorkloadSpec | None = None,
    fill: float = 0.15,
    seed: int = 1,
) -> Path:
    """Create and register a powered-off VM with sparse disks, ``fill`` of them written.

    The prefill is made of real guest blocks recorded in a clean ack map, so a
    copy of a never-booted VM can be verified like any other.
    """
    spec = (workload or WorkloadSpec()).validate()
    if not 0.0 <= fill <= 1.0:
        raise ParameterError("fill must be in [0, 1]", fill=fill)
    inv = Inventory(layout, host)
    if inv.lookup(name) is not None:
        raise LabError(f"VM {name} already exists on {host}", vm=name, host=host)
    vmdir = layout.datastore_dir(host, datastore) / name
    vmdir.mkdir(parents=True, exist_ok=True)
    disks = []
    for i, size in enumerate(disk_sizes):
        if size <= 0 or size % spec.block_size:
            raise ParameterError(f"disk size {size} must be a positive multiple of the block size")
        file = f"{name}-flat.vmdk" if i == 0 else f"{name}_{i}-flat.vmdk"
        with open(vmdir / file, "wb") as fh:
            fh.truncate(size)
        disks.append(DiskConfig(2000 + i, f"Hard disk {i + 1}", file, size))
    vm_uuid = str(uuid.uuid4())
    from .registration import guest_ip_for

    cfg = VmConfig(name, vm_uuid, disks, spec, cbt, [], ["VM Network"], guest_ip_for(vm_uuid))
    rng = random.Random(seed)
    for d in disks:
        ctk = ChangeTracker.create(ctk_path(vmdir, d), d.capacity) if cbt else None
        vd = VirtualDisk(vmdir, d, ctk)
        acks = AckMap(d.key, spec.block_size, clean=True)
        try:
            _prefill(vd, acks, fill, rng)
            vd.fsync()
        finally:
            vd.close()
        acks.save(ack_path(vmdir, d.key))
    cfg.save(vmdir / f"{name}{VMX_SUFFIX}")
    inv.add(name, datastore, name, f"{name}{VMX_SUFFIX}")
    return vmdir


def _prefill(disk: VirtualDisk, acks: AckMap, fill: float, rng: random.Random) -> None:
    bs = acks.block_size
    runs = disk.capacity // _RUN
    chosen = sorted(rng.sample(range(runs), int(runs * fill))) if runs else []
    seq = 1
    per_run = _RUN // bs
    for r in chosen:
        first = r * per_run
        blocks = []
        for i in range(first, first + per_run):
            blocks.append(make_block(disk.key, bs, i, seq))
            acks.seqs[i] = seq
            seq += 1
        disk.write(r * _RUN, b"".join(blocks))


def lab_up(
    root: Path | str | None = None,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    datastore: str = DEFAULT_DATASTORE,
    vm: str = "alice",
    disk_sizes: Sequence[int] = DEFAULT_DISKS,
    fill: float = 0.15,
    workload: WorkloadSpec | None = None,
    power_on: bool = True,
    seed: int = 1,
) -> LabStatus:
    """Create what is missing of the default lab (idempotent) and start the VM."""
    layout = LabLayout(Path(root or default_root()).resolve())
    for h in hosts:
        layout.datastore_dir(h, datastore).mkdir(parents=True, exist_ok=True)
        inv = Inventory(layout, h)
        if not inv.path.exists():
            with inv.locked():
                pass
    if vm and Inventory(layout, hosts[0]).lookup(vm) is None:
        create_vm(
            layout, hosts[0], datastore, vm, disk_sizes, workload=workload, fill=fill, seed=seed
        )
    if vm and power_on:
        from ..control.lab import LabHost

        LabHost(layout.root, hosts[0]).power_on(vm)
    return lab_status(layout.root)


@dataclass
class VmStatus:
    name: str
    host: str
    datastore: str
    folder: str
    power: str
    pid: int | None
    state: str | None  #: guest state: booting, running, boot-failed, ...
    cbt_enabled: bool
    snapshots: list[str]
    workload: dict[str, Any]
    disks: list[dict[str, Any]]
    writes: int | None = None


@dataclass
class DatastoreStatus:
    name: str
    path: str
    free: int
    vms: list[VmStatus] = field(default_factory=list)


@dataclass
class LabStatus:
    root: str
    exists: bool
    hosts: dict[str, list[DatastoreStatus]] = field(default_factory=dict)

    def vms(self) -> list[VmStatus]:
        return [v for dss in self.hosts.values() for ds in dss for v in ds.vms]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """A short human summary, one line per host, datastore and VM."""
        if not self.exists:
            return [f"no lab at {self.root} (vmigrate lab up creates one)"]
        out = [f"lab at {self.root}"]
        for host, dss in self.hosts.items():
            out.append(f"  host {host}")
            for ds in dss:
                out.append(f"    [{ds.name}] free {ds.free / 2**30:.1f} GiB")
                for v in ds.vms:
                    snaps = ", ".join(v.snapshots) or "none"
                    out.append(
                        f"      {v.name}: {v.power} pid={v.pid} state={v.state} "
                        f"cbt={'on' if v.cbt_enabled else 'off'} snapshots={snaps} "
                        f"workload={v.workload['rate_mb_s']} MB/s x {v.workload['block_size']} B"
                    )
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def lab_status(root: Path | str | None = None) -> LabStatus:
    layout = LabLayout(Path(root or default_root()).resolve())
    status = LabStatus(str(layout.root), layout.hosts_dir.is_dir())
    for h in layout.hosts():
        dss = []
        inv = Inventory(layout, h)
        locs = [inv.locate(n) for n in inv.names()]
        for ds in layout.datastores(h):
            path = layout.datastore_dir(h, ds)
            st = os.statvfs(path)
            dstat = DatastoreStatus(ds, str(path), st.f_bavail * st.f_frsize)
            for loc in (x for x in locs if x.datastore == ds):
                dstat.vms.append(_vm_status(h, VmHandle(loc)))
            dss.append(dstat)
        status.hosts[h] = dss
    return status


def _vm_status(host: str, h: VmHandle) -> VmStatus:
    cfg = h.config()
    guest = h.status()
    pid = h.pid()
    disks = []
    for d in cfg.disks:
        with contextlib.suppress(OSError):
            st = (h.vmdir / d.file).stat()
            disks.append(
                {
                    "key": d.key,
                    "file": d.file,
                    "capacity": d.capacity,
                    "allocated": st.st_blocks * 512,
                }
            )
    return VmStatus(
        name=cfg.name,
        host=host,
        datastore=h.loc.datastore,
        folder=h.loc.folder,
        power="poweredOn" if pid is not None else "poweredOff",
        pid=pid,
        state=guest["state"] if guest else None,
        cbt_enabled=cfg.cbt_enabled,
        snapshots=[s.name for s in cfg.snapshots],
        workload=cfg.workload.to_dict(),
        disks=disks,
        writes=guest["writes"] if guest else None,
    )


def lab_down(
    root: Path | str | None = None, *, remove: bool = False, timeout: float = 30.0
) -> list[str]:
    """Shut every guest down cleanly (hard stop after ``timeout``); optionally delete the lab."""
    layout = LabLayout(Path(root or default_root()).resolve())
    stopped = []
    for h in layout.hosts():
        inv = Inventory(layout, h)
        for name in inv.names():
            vmdir = inv.locate(name).vmdir
            pid = guest_pid(vmdir)
            if pid is None:
                continue
            with contextlib.suppress(LabError):
                call(vmdir, "shutdown", 10.0)
            try:
                wait_dead(pid, vmdir, timeout)
            except LabError:
                kill_guest(vmdir)
            stopped.append(f"{h}/{name}")
    if remove and layout.root.exists():
        shutil.rmtree(layout.root)
    return stopped


__all__ = ["LabStatus", "VmStatus", "create_vm", "lab_down", "lab_status", "lab_up"]
