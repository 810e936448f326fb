"""End to end with nothing faked in vmigrate: vSphere control through two simulated
ESXi hosts (govmomi), the data plane over real sshd (``open_ssh_datastore``: the
agent uploaded over SSH serves each datastore), real disk data, the lab's real
change tracking behind QueryChangedDiskAreas; the engine's seed and delta cycles,
then the engine's cutover (``run_cutover``: go/no-go, guest shutdown, final
cycle, certify, Bob's .vmx and descriptors, register, power on, ready).

The simulator keeps a datastore made with CreateLocalDatastore in a local
folder; the SSH hosts (namespaces a and b as root, else one loopback sshd) see
the same file system.  ESXi serves ``/vmfs/volumes/<ds>``; here each
VsphereHost is told that its datastores are under the test's folder
(``datastore_root``), whose subfolders are named after the datastores.

Simulator workarounds (tests only): Alice's .vmx, descriptors and .nvram get
ESXi-like content (it leaves them empty); Bob's folder gets the ``vmware.log``
its RegisterVM wants; a thread plays Bob's guest booting (tools, IP, heartbeat).
"""

from __future__ import annotations

import os
import random
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
from vmigrate_lib.engine.cutover import CutoverOptions, run_cutover
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.lab.ctk import GRAIN
from vmigrate_lib.params import MigrationParams, SyncParams
from vmigrate_lib.session import close_migration

pytestmark = [pytest.mark.slow]

MiB = 1 << 20
CAP = 8 * MiB


@dataclass
class Env:
    src: vcsim_peer.VcsimInfo
    dst: vcsim_peer.VcsimInfo
    ssh_src: Any
    ssh_dst: Any
    root: Path  #: datastores: root/srcds, root/dstds
    disks: list[vsim.Disk]
    tmp: Path

    def host(self, sim: vcsim_peer.VcsimInfo, ssh: Any, **kw: Any) -> VsphereHost:
        hp = vsim.host_params(sim, host=ssh.ip, ssh_user=ssh.user, ssh_port=ssh.port,
                              ssh_key=ssh.key_path, ssh_known_hosts=ssh.known_hosts_path, **kw)
        return VsphereHost(hp, datastore_root=str(self.root))

    def migration(self, **sync: Any) -> Migration:
        s = self.host(self.src, self.ssh_src)
        d = self.host(self.dst, self.ssh_dst, datastore="dstds")
        params = MigrationParams(
            vm="alice", dest_name="bob", source=s.hp, destination=d.hp,
            workspace=self.tmp / "ws", downtime_budget=300.0, sync=SyncParams(**sync))
        ws = Workspace(params.workspace)
        ws.load()
        return Migration(params=params, source=s, dest=d, workspace=ws)


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path, ssh_pair: tuple[Any, Any, str]) -> Iterator[Env]:
    os.chmod(tmp_path, 0o755)
    with sim_pair(tmp_path, vcsim_binary, cap=CAP, disks=2, offsets=(0, 3 * MiB, CAP - GRAIN),
                  rng=random.Random(7), esxi_files=True) as p:
        yield Env(p.src, p.dst, ssh_pair[0], ssh_pair[1], p.root, p.disks, tmp_path)


def test_seed_deltas_cutover_over_ssh(env: Env) -> None:
    rng = random.Random(11)
    m = env.migration(allow_enable_cbt=True, certify="full")
    try:
        assert type(m.src_ds("srcds")).__name__ == "SshAgentDatastore"
        assert type(m.dst_ds()).__name__ == "SshAgentDatastore"
        with m.workspace:
            outcomes = run_cycles(m, 3, should_stop=writes_between_cycles(env.disks, rng))
        assert_seed_then_tracked_deltas([o.record for o in outcomes])
    finally:
        close_migration(m)
    bob_dir = env.root / "dstds" / "bob"
    for d in env.disks:
        assert d.flat.read_bytes() == (bob_dir / d.flat.name.replace("alice", "bob")).read_bytes()

    # Alice writes on until the cutover shuts her down; the final cycle takes the rest.
    for d in env.disks:
        d.write(7 * MiB, rng.randbytes(GRAIN))
    (bob_dir / "vmware.log").touch()  # simulator: RegisterVM wants it (ESXi does not)
    m = env.migration()
    try:
        opts = CutoverOptions(shutdown_timeout=30, ready_timeout=30, certify="full",
                              shutdown_s=1.0, boot_s=1.0)
        with vsim.GuestStarter(env.dst, "bob") as guest, m.workspace:
            res = run_cutover(m, opts)
        assert guest.done.is_set()
        assert res.status == "done", res.record
        co = res.record
        assert co is not None and co.go is not None and co.final_cycle is not None
        assert not co.go["forced"] and co.certify == "identical"
        assert co.final_cycle["certify"]["result"] == "identical"
        # the cutover's cycles took the writes: the final one, or the predelta cycle the
        # cutover runs first when the last cycle is older than PREDELTA_FRESH_S (under load)
        during = [r for r in m.workspace.journal.records("cycle")
                  if r["number"] > len(outcomes)]
        assert during and during[-1]["kind"] == "final", during
        assert [sum(r["disks"][i]["bytes_changed"] for r in during) for i in (0, 1)] == \
            [GRAIN, GRAIN], during
        # qcda_lab's change maps (-ctk.bin, .json) are no ESXi runtime files (the host's
        # list is VMware's: Host.is_runtime_file), so they travel like any small file
        assert sorted(co.files_copied) == [
            "bob-ctk.bin", "bob-ctk.bin.snapshots.json", "bob.nvram", "bob.vmdk", "bob.vmx",
            "bob.vmxf", "bob_1-ctk.bin", "bob_1-ctk.bin.snapshots.json", "bob_1.vmdk"]
        assert m.source.power_state("alice") == PowerState.OFF
        bob = m.dest.find_vm("bob")
        assert (bob.datastore, bob.folder, bob.power) == ("dstds", "bob", PowerState.ON)
        assert bob.guest_ip == "10.0.0.9"
    finally:
        close_migration(m)
    for d in env.disks:
        assert d.flat.read_bytes() == (bob_dir / d.flat.name.replace("alice", "bob")).read_bytes()

    # Bob's configuration names Bob's files; nothing of Alice's runtime travelled.
    vmx = (bob_dir / "bob.vmx").read_text()
    assert 'displayName = "bob"' in vmx and 'nvram = "bob.nvram"' in vmx
    assert 'scsi0:0.fileName = "bob.vmdk"' in vmx and 'scsi0:1.fileName = "bob_1.vmdk"' in vmx
    assert 'ctkEnabled = "FALSE"' in vmx and "alice" not in vmx and "vswp" not in vmx
    assert 'uuid.action = "keep"' in vmx
    for stem in ("bob", "bob_1"):
        desc = (bob_dir / f"{stem}.vmdk").read_text()
        assert f'VMFS "{stem}-flat.vmdk"' in desc and "changeTrackPath" not in desc
    assert (bob_dir / "bob.nvram").read_bytes() == (env.disks[0].flat.parent / "alice.nvram").read_bytes()
    names = sorted(p.name for p in bob_dir.iterdir())
    assert not [n for n in names if "alice" in n or n.endswith(("-ctk.vmdk", ".vswp"))], names
