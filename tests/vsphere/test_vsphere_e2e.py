"""End to end through the simulator: vSphere control (VsphereHost on two simulated
ESXi hosts), real disk data on their datastore folders, the lab's real change
tracking behind QueryChangedDiskAreas, the engine's seed and delta cycles, then a
cutover by hand (guest shutdown, final cycle, register, power on, ready).

Data plane: the simulator keeps each datastore in a local folder, so
``/vmfs/volumes/<ds>`` is served from it by a local agent (LocalTransport);
over SSH it would be the same agent on an exec channel.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from tests.vsphere.simenv import assert_seed_then_tracked_deltas, sim_pair, writes_between_cycles
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.errors import (
    ChangeIdInvalid,
    ChangeTrackingOff,
    HostApiError,
    InsufficientSpace,
)
from vmigrate_lib.extents import Extent
from vmigrate_lib.lab.ctk import GRAIN, ChangeTracker
from vmigrate_lib.params import MigrationParams, SyncParams
from vmigrate_lib.session import close_migration

MiB = 1 << 20
CAP = 8 * MiB


@dataclass
class Env:
    src: vcsim_peer.VcsimInfo
    dst: vcsim_peer.VcsimInfo
    src_dir: Path
    dst_dir: Path
    disks: list[vsim.Disk]
    tmp: Path

    def hosts(self) -> tuple[VsphereHost, VsphereHost]:
        s = VsphereHost(vsim.host_params(self.src),
                        transport_factory=vsim.local_transports({"srcds": self.src_dir}))
        d = VsphereHost(vsim.host_params(self.dst, datastore="dstds"),
                        transport_factory=vsim.local_transports({"dstds": self.dst_dir}))
        return s, d

    def migration(self, **sync: Any) -> Migration:
        s, d = self.hosts()
        params = MigrationParams(
            vm="alice", source=s.hp, destination=d.hp, workspace=self.tmp / "ws",
            sync=SyncParams(**sync),
        )
        ws = Workspace(params.workspace)
        ws.load()
        return Migration(params=params, source=s, dest=d, workspace=ws)


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path) -> Iterator[Env]:
    """Alice's two disks sparse: three allocated areas each (tests/vsphere/simenv.py)."""
    with sim_pair(tmp_path, vcsim_binary, cap=CAP, disks=2, offsets=(0, 3 * MiB, CAP - GRAIN),
                  rng=random.Random(7)) as p:
        yield Env(p.src, p.dst, p.root / "srcds", p.root / "dstds", p.disks, tmp_path)


def same(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def test_seed_deltas_and_cutover(env: Env) -> None:
    rng = random.Random(11)
    m = env.migration(allow_enable_cbt=True, certify="full")
    try:
        with m.workspace:
            outcomes = run_cycles(m, 3, should_stop=writes_between_cycles(env.disks, rng))
        # the seed copied the allocated areas only (three 64 KiB grains per disk)
        assert_seed_then_tracked_deltas([o.record for o in outcomes])
        assert m.source.list_snapshots("alice") == []
        assert m.source.find_vm("alice").disks[0].cbt_enabled
    finally:
        close_migration(m)
    for d in env.disks:
        assert same(d.flat, env.dst_dir / "alice" / d.flat.name)

    # Cutover: Alice keeps writing, then stops; the final cycle copies the rest.
    for d in env.disks:
        d.write(7 * MiB, rng.randbytes(GRAIN))
    m = env.migration()
    try:
        src, dst = m.source, m.dest
        assert isinstance(src, VsphereHost) and isinstance(dst, VsphereHost)
        src.shutdown_guest("alice")
        assert src.wait_powered_off("alice", timeout=30) is True
        with m.workspace:
            final = run_cycle(m, "final")
        assert final.record["kind"] == "final"
        assert [d["bytes_changed"] for d in final.record["disks"]] == [GRAIN, GRAIN]
        for d in env.disks:
            assert same(d.flat, env.dst_dir / "alice" / d.flat.name)
        with pytest.raises(HostApiError, match="is not on the datastore"):
            dst.register_vm("alice", "dstds", "alice", src.find_vm("alice"))
        # The .vmx travels with the disks (another step's job); the simulator also
        # wants the .nvram and vmware.log there to register.
        # The .vmx names Alice's NIC, whose MAC register_vm checks Bob kept.
        (env.dst_dir / "alice" / "alice.vmx").write_text(vsim.esxi_vmx("alice"))
        for f in ("alice.nvram", "vmware.log"):
            (env.dst_dir / "alice" / f).touch()
        bob = dst.register_vm("alice", "dstds", "alice", src.find_vm("alice"))
        assert bob.datastore == "dstds" and bob.power == PowerState.OFF
        dst.power_on("alice")
        with vsim.pyvmomi(env.dst) as si:
            vsim.set_guest(vsim.vm(si, "alice"), tools="guestToolsRunning", ip="10.0.0.9",
                           heartbeat="green")
        ready = dst.wait_ready("alice", timeout=10)
        assert ready.guest_ip == "10.0.0.9" and ready.tools_running
    finally:
        close_migration(m)


def test_query_from_lab_tracking_and_reset_epoch(env: Env) -> None:
    src, dst = env.hosts()
    try:
        src.enable_change_tracking("alice")
        key = src.find_vm("alice").disks[0].key
        s1 = src.create_snapshot("alice", "vmigrate-1")
        assert list(src.query_changed_areas("alice", s1, key, "*")) == [
            Extent(0, GRAIN), Extent(3 * MiB, GRAIN), Extent(CAP - GRAIN, GRAIN)]
        src.remove_snapshot("alice", s1.id)
        env.disks[0].write(5 * MiB, b"x" * (GRAIN + 1))
        s2 = src.create_snapshot("alice", "vmigrate-2")
        assert list(src.query_changed_areas("alice", s2, key, s1.change_ids[key])) == [
            Extent(5 * MiB, 2 * GRAIN)]
        src.remove_snapshot("alice", s2.id)
        t = ChangeTracker(env.disks[0].ctk)  # tracking reset (e.g. a storage move)
        t.reset()
        t.close()
        s3 = src.create_snapshot("alice", "vmigrate-3")
        with pytest.raises(ChangeIdInvalid, match="another tracking epoch"):
            src.query_changed_areas("alice", s3, key, s2.change_ids[key])
        src.remove_snapshot("alice", s3.id)
    finally:
        src.close()
        dst.close()  # unused, but logged in: left open, it outlived the test


def test_cbt_off_not_allowed_changes_nothing(env: Env) -> None:
    m = env.migration(change_tracking="require", allow_enable_cbt=False)
    try:
        with pytest.raises(ChangeTrackingOff, match="allow_enable_cbt"):
            run_cycles(m, 1)
        vm = m.source.find_vm("alice")
        assert not any(d.cbt_enabled for d in vm.disks)
        assert m.source.list_snapshots("alice") == []
        assert not (env.dst_dir / "alice").exists()
    finally:
        close_migration(m)


@pytest.fixture
def small_dst(env: Env) -> Iterator[Path]:
    """The destination datastore on a 4 MiB tmpfs (needs root for mount)."""
    target = env.dst_dir
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


def test_full_datastore_changes_nothing(env: Env, small_dst: Path) -> None:
    # two disks of 192 KiB allocated fit; make them need more than 4 MiB
    for d in env.disks:
        d.write(MiB, random.Random(3).randbytes(3 * MiB))
    m = env.migration(allow_enable_cbt=True)
    try:
        assert m.dest.datastores() == ["LocalDS_0", "dstds"]
        with pytest.raises(InsufficientSpace, match="dstds"):
            run_cycles(m, 1)
        assert not any(d.cbt_enabled for d in m.source.find_vm("alice").disks)
        assert m.source.list_snapshots("alice") == []
        assert list(small_dst.iterdir()) == []
        assert not m.workspace.state_path.exists()
    finally:
        close_migration(m)
