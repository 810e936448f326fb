"""Two simulated ESXi hosts with real disk data, for engine-level vSphere tests.

Alice (one thin 4 MiB disk, two written grains, change tracking from the lab's
tracker behind QueryChangedDiskAreas) runs on the source simulator; the
destination has an empty datastore.  Datastores are local folders served by a
local agent (LocalTransport), as in test_vsphere_e2e.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyVim.task import WaitForTask

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.lab.ctk import GRAIN, ChangeTracker
from vmigrate_lib.params import MigrationParams, SyncParams

MiB = 1 << 20
CAP = 4 * MiB


@dataclass
class SimEnv:
    src: vcsim_peer.VcsimInfo
    dst: vcsim_peer.VcsimInfo
    root: Path
    tmp: Path
    disk: vsim.Disk

    def source(self, **kw: Any) -> VsphereHost:
        return VsphereHost(vsim.host_params(self.src), keepalive=None,
                           transport_factory=vsim.local_transports({"srcds": self.root / "srcds"}),
                           **kw)

    def migration(self, source_kw: dict[str, Any] | None = None, **sync: Any) -> Migration:
        s = self.source(**(source_kw or {}))
        d = VsphereHost(vsim.host_params(self.dst, datastore="dstds"), keepalive=None,
                        transport_factory=vsim.local_transports({"dstds": self.root / "dstds"}))
        params = MigrationParams(
            vm="alice", dest_name="bob", source=s.hp, destination=d.hp,
            workspace=self.tmp / "ws", downtime_budget=300.0, sync=SyncParams(**sync))
        ws = Workspace(params.workspace)
        ws.load()
        return Migration(params=params, source=s, dest=d, workspace=ws)

    @property
    def bob_flat(self) -> Path:
        return self.root / "dstds" / "bob" / "bob-flat.vmdk"


@dataclass
class SimPair:
    """A source simulator with Alice powered on (disks with written grains) and an
    empty destination simulator; datastores are folders under ``root``."""

    src: vcsim_peer.VcsimInfo
    dst: vcsim_peer.VcsimInfo
    root: Path
    disks: list[vsim.Disk]


@contextmanager
def sim_pair(tmp: Path, binary: Path, *, cap: int = CAP, disks: int = 1,
             offsets: tuple[int, ...] = (0, 2 * MiB), rng: random.Random | None = None,
             esxi_files: bool = False) -> Iterator[SimPair]:
    """The set-up every engine-level simulator test shares, written once.

    Each disk gets one random grain at each of ``offsets`` (from ``rng``, or seeded by
    the offset); ``esxi_files`` also writes the ``.vmx``/descriptors an ESXi folder has.
    """
    root = tmp / "volumes"
    src_dir, dst_dir = root / "srcds", root / "dstds"
    src_dir.mkdir(parents=True)
    dst_dir.mkdir()
    qcda = vsim.qcda_lab_command({"srcds": src_dir}, page=2 * MiB)
    with vcsim_peer.run_vcsim(qcda_cmd=qcda, binary=binary) as src, \
            vcsim_peer.run_vcsim(binary=binary) as dst:
        with vsim.pyvmomi(src) as si:
            vsim.create_datastore(si, "srcds", src_dir)
            vm = vsim.create_vm(si, "alice", "srcds", cap, disks=disks)
            WaitForTask(vm.PowerOnVM_Task())
            # Alice runs VMware Tools: go/no-go reads it (issue 11 item 3)
            vsim.set_guest(vm, tools="guestToolsRunning", ip="10.0.0.5", heartbeat="green")
        with vsim.pyvmomi(dst) as si:
            vsim.create_datastore(si, "dstds", dst_dir)
        if esxi_files:
            vsim.write_esxi_files(src_dir / "alice", "alice", cap, disks=disks)
        else:
            vsim.write_descriptors(src_dir / "alice", "alice", cap, disks=disks)
        made = []
        for stem in ["alice"] + [f"alice_{i}" for i in range(1, disks)]:
            flat = src_dir / "alice" / f"{stem}-flat.vmdk"
            os.truncate(flat, cap)
            ctk = src_dir / "alice" / f"{stem}-ctk.bin"
            ChangeTracker.create(ctk, cap).close()
            disk = vsim.Disk(flat, ctk)
            for off in offsets:
                disk.write(off, (rng or random.Random(off)).randbytes(GRAIN))
            made.append(disk)
        yield SimPair(src, dst, root, made)


@contextmanager
def sim_env(tmp: Path, binary: Path) -> Iterator[SimEnv]:
    with sim_pair(tmp, binary) as p:
        yield SimEnv(p.src, p.dst, p.root, tmp, p.disks[0])


#: The e2e scenarios' guest writes after the seed (1 grain a disk) and after the first
#: delta (3 grains a disk: one write spans two).
CYCLE_WRITES = ([(MiB + 5, 3000)], [(2 * MiB, 2 * GRAIN), (6 * MiB + GRAIN, 10)])


def writes_between_cycles(disks: Sequence[vsim.Disk],
                          rng: random.Random) -> Callable[[list[dict[str, Any]]], bool]:
    """A ``run_cycles`` ``should_stop`` that writes :data:`CYCLE_WRITES` to every disk
    after the first and second cycles, and never stops the run."""

    def between_cycles(records: list[dict[str, Any]]) -> bool:
        n = len(records)
        for off, size in CYCLE_WRITES[n - 1] if n <= len(CYCLE_WRITES) else ():
            for d in disks:
                d.write(off, rng.randbytes(size))
        return False

    return between_cycles


def assert_seed_then_tracked_deltas(recs: Sequence[dict[str, Any]]) -> None:
    """Two disks, three cycles: a seed of the three allocated grains each, then tracked
    deltas of exactly the grains :data:`CYCLE_WRITES` touched, all certified identical."""
    assert [r["kind"] for r in recs] == ["seed", "delta", "delta"]
    assert all(r["certify"]["result"] == "identical" for r in recs)
    assert [d["bytes_changed"] for d in recs[0]["disks"]] == [3 * GRAIN, 3 * GRAIN]
    for r, grains in zip(recs[1:], (1, 3)):
        assert [d["mode"] for d in r["disks"]] == ["tracked", "tracked"]
        assert [d["bytes_changed"] for d in r["disks"]] == [grains * GRAIN] * 2
