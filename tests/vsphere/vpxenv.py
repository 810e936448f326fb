"""One vCenter (the simulator's VPX model) managing both hosts, with real disk data.

Alice (one thin 4 MiB disk with data, her ESXi-like .vmx, .nvram and descriptor,
in her host's autostart order, Tools running, an annotation) runs on ``DC0_H0`` from datastore
``srcds``; the destination is ``DC0_C0_H0`` (a cluster host of the same
datacenter) with an empty datastore ``dstds``.  Datastores are local folders
served by a local agent (LocalTransport), as in simenv; control goes through one
vCenter for both sides, as ``examples/vsphere.yaml`` describes.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.errors import VmigrateError
from vmigrate_lib.params import MigrationParams, VsphereHostParams, merge, validate
from vmigrate_lib.session import close_migration

MiB = 1 << 20
CAP = 4 * MiB
SRC_HOST, DST_HOST = "DC0_H0", "DC0_C0_H0"
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "vsphere.yaml"
NOTE = "owner: team-x"  #: Alice's annotation before the migration


@dataclass
class VpxEnv:
    sim: vcsim_peer.VcsimInfo
    root: Path  #: root/srcds, root/dstds
    tmp: Path

    def raw(self, **top: Any) -> dict[str, Any]:
        """examples/vsphere.yaml, pointed at the simulator (its URL, host names, user)."""
        raw = yaml.safe_load(EXAMPLE.read_text())
        vsim.host_params(self.sim)  # sets the password's environment variable
        over = {"url": self.sim.url, "user": self.sim.user, "password_env": vsim.PW_ENV,
                "verify_tls": False}
        raw["source"].update(over, host=SRC_HOST)
        raw["destination"].update(over, host=DST_HOST, datastore="dstds")
        raw["workspace"] = str(self.tmp / "ws")
        return merge(raw, top)

    def params(self, **top: Any) -> MigrationParams:
        return validate(self.raw(**top))

    def preflight_lines(self, **top: Any) -> tuple[dict[str, str], VmigrateError | None]:
        """Preflight of these params (name -> detail of each line) and its first error."""
        m = self.migration(self.params(**top))
        try:
            report = run_preflight(m, raise_on_failure=False)
            return {c.name: c.detail for c in report.checks}, report.first_error()
        finally:
            close_migration(m)

    def host(self, hp: VsphereHostParams | Any, cls: type[VsphereHost] = VsphereHost,
             **kw: Any) -> VsphereHost:
        roots = {"srcds": self.root / "srcds", "dstds": self.root / "dstds"}
        return cls(hp, keepalive=None, transport_factory=vsim.local_transports(roots), **kw)

    def migration(self, params: MigrationParams | None = None,
                  source: type[VsphereHost] = VsphereHost,
                  dest: type[VsphereHost] = VsphereHost) -> Migration:
        """A migration from the params (default: the example's), with these host classes
        (a test's subclass plays a host that fails or behaves otherwise)."""
        p = params or self.params()
        assert isinstance(p.source, VsphereHostParams)
        assert isinstance(p.destination, VsphereHostParams)
        ws = Workspace(p.workspace)
        ws.load()
        return Migration(params=p, source=self.host(p.source, source),
                         dest=self.host(p.destination, dest), workspace=ws)

    def control(self, path: str = "/vmigrate-identity", **request: Any) -> None:
        """A control of the peer: identity.go's (default) or realhost.go's."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        req = urllib.request.Request(f"https://{self.sim.host}:{self.sim.port}{path}",
                                     data=json.dumps(request).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            resp.read()


def host_named(si: Any, name: str) -> Any:
    return next(h for h in vsim.objects(si, vim.HostSystem) if h.name == name)


def nic_facts(vm: Any) -> list[tuple[Any, Any, Any]]:
    """(MAC, addressType, startConnected) of each NIC."""
    nics: list[Any] = [d for d in vm.config.hardware.device
                       if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    return [(d.macAddress, d.addressType, d.connectable.startConnected) for d in nics]


def autostart(vm: Any) -> list[tuple[str, int, str]]:
    mgr = vm.runtime.host.configManager.autoStartManager
    return [(p.key.name, p.startOrder, p.startAction) for p in mgr.config.powerInfo or []]


@contextmanager
def vpx_env(tmp: Path, binary: Path) -> Iterator[VpxEnv]:
    root = tmp / "volumes"
    src_dir, dst_dir = root / "srcds", root / "dstds"
    src_dir.mkdir(parents=True)
    dst_dir.mkdir()
    with vcsim_peer.run_vcsim(model="vpx", binary=binary) as sim:
        env = VpxEnv(sim, root, tmp)
        with vsim.pyvmomi(sim) as si:
            vsim.create_datastore(si, "srcds", src_dir, host_named(si, SRC_HOST))
            vsim.create_datastore(si, "dstds", dst_dir, host_named(si, DST_HOST))
            vm = vsim.create_vm(si, "alice", "srcds", CAP, host=host_named(si, SRC_HOST))
            WaitForTask(vm.PowerOnVM_Task())
            vsim.set_guest(vm, tools="guestToolsRunning", ip="10.0.0.5", heartbeat="green")
            WaitForTask(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(annotation=NOTE)))
        env.control(op="autostart", vm="alice", order=1)
        vsim.write_esxi_files(src_dir / "alice", "alice", CAP)
        flat = src_dir / "alice" / "alice-flat.vmdk"
        os.truncate(flat, CAP)
        with open(flat, "r+b") as f:
            f.write(random.Random(3).randbytes(3 * 65536))
        yield env
