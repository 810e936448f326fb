"""Helpers for VsphereHost tests: set up the simulator the way a test needs it.

Setup goes through pyVmomi directly (this is the test's hand on the "real"
host); the code under test is only ever VsphereHost.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl

from tests.peers import vcsim as vcsim_peer
from vmigrate_lib.dataplane.transport import LocalTransport
from vmigrate_lib.lab.ctk import ChangeTracker
from vmigrate_lib.params import VsphereHostParams

PW_ENV = "VMIGRATE_TEST_VC_PW"
QCDA_LAB = Path(vcsim_peer.PEERS) / "qcda_lab.py"


def host_params(sim: vcsim_peer.VcsimInfo, **kw: Any) -> VsphereHostParams:
    """Params for the simulator; the password goes through an environment variable."""
    os.environ[PW_ENV] = sim.password
    values: dict[str, Any] = {
        "type": "vsphere", "host": sim.host, "url": sim.url, "user": sim.user,
        "password_env": PW_ENV, "verify_tls": False,  # Go's test certificate
    }
    values.update(kw)
    return VsphereHostParams(**values)


def qcda_lab_command(roots: dict[str, Path], page: int = 1 << 20, log: Path | None = None) -> str:
    args = [sys.executable, str(QCDA_LAB), "--page", str(page)]
    for name, path in roots.items():
        args += ["--ds", f"{name}={path}"]
    if log is not None:
        args += ["--log", str(log)]
    return shlex.join(args)


@contextmanager
def pyvmomi(sim: vcsim_peer.VcsimInfo) -> Iterator[Any]:
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.user, pwd=sim.password,
                      disableSslCertValidation=True)
    try:
        yield si
    finally:
        Disconnect(si)


def objects(si: Any, kind: Any) -> list[Any]:
    c = si.RetrieveContent()
    view = c.viewManager.CreateContainerView(c.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def vm(si: Any, name: str) -> Any:
    return next(v for v in objects(si, vim.VirtualMachine) if v.name == name)


def first_host(si: Any) -> Any:
    return objects(si, vim.HostSystem)[0]


def create_datastore(si: Any, name: str, path: Path, host: Any = None) -> Any:
    host = host or first_host(si)
    path.mkdir(parents=True, exist_ok=True)
    return host.configManager.datastoreSystem.CreateLocalDatastore(name=name, path=str(path))


def create_vm(si: Any, name: str, ds: str, capacity: int, host: Any = None,
              network: str = "VM Network", disks: int = 1) -> Any:
    """A powered-off VM with flat thin disks ``[ds] name/name.vmdk`` (+ ``name_1.vmdk``...)."""
    host = host or first_host(si)
    dc = host.parent
    while not isinstance(dc, vim.Datacenter):
        dc = dc.parent
    changes = [vim.vm.device.VirtualDeviceSpec(
        operation="add", device=vim.vm.device.VirtualLsiLogicController(
            key=1000, busNumber=0, sharedBus="noSharing"))]
    for i in range(disks):
        suffix = "" if i == 0 else f"_{i}"
        changes.append(vim.vm.device.VirtualDeviceSpec(
            operation="add", fileOperation="create", device=vim.vm.device.VirtualDisk(
                key=-1 - i, unitNumber=i, controllerKey=1000, capacityInKB=capacity // 1024,
                backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                    fileName=f"[{ds}] {name}/{name}{suffix}.vmdk", diskMode="persistent",
                    thinProvisioned=True))))
    # the MAC esxi_vmx writes, so that the API and the .vmx agree as on ESXi
    changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.VirtualE1000(
        key=-100, macAddress=ESXI_VMX_MAC, addressType="generated", backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network))))
    spec = vim.vm.ConfigSpec(name=name, files=vim.vm.FileInfo(vmPathName=f"[{ds}] {name}"),
                             memoryMB=64, numCPUs=1, guestId="otherGuest64", deviceChange=changes)
    task = dc.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host)
    WaitForTask(task)
    return task.info.result


def snapshot(si: Any, vm_obj: Any, name: str) -> Any:
    task = vm_obj.CreateSnapshot_Task(name=name, description="", memory=False, quiesce=False)
    WaitForTask(task)
    return task.info.result


def set_guest(vm_obj: Any, **values: str) -> None:
    """Guest state through the simulator's ``SET.*`` extraConfig keys."""
    keys = {"ip": "SET.guest.ipAddress", "tools": "SET.guest.toolsRunningStatus",
            "heartbeat": "SET.guestHeartbeatStatus"}
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=keys[k], value=v)
                                          for k, v in values.items()])
    WaitForTask(vm_obj.ReconfigVM_Task(spec))


def local_transports(roots: dict[str, Path]) -> Any:
    """Serve ``/vmfs/volumes/<ds>`` from the folder the simulator keeps the datastore in."""

    def make(name: str, root: str) -> LocalTransport:
        assert root == f"/vmfs/volumes/{name}"
        return LocalTransport(str(roots[name]))

    return make


def wait_for(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


#: the generated MAC of ethernet0 in esxi_vmx and of the NIC create_vm adds
ESXI_VMX_MAC = "00:0c:29:9d:00:01"


def esxi_vmx(name: str, ds_uuid: str = "5f0c1d2e-aaaa0000-beef-0050569d0001", disks: int = 1) -> str:
    """A .vmx as ESXi writes it (the simulator leaves the file empty)."""
    lines = [
        '.encoding = "UTF-8"', 'config.version = "8"', 'virtualHW.version = "13"',
        f'displayName = "{name}"', f'nvram = "{name}.nvram"', 'guestOS = "other-64"',
        'memSize = "64"', 'numvcpus = "1"', 'scsi0.present = "TRUE"',
        'scsi0.virtualDev = "lsilogic"', 'ctkEnabled = "TRUE"',
        'ethernet0.present = "TRUE"', 'ethernet0.networkName = "VM Network"',
        'ethernet0.addressType = "generated"', 'ethernet0.generatedAddress = "00:0c:29:9d:00:01"',
        'uuid.bios = "56 4d 9d 00 00 01 00 00-00 00 00 00 00 00 00 01"',
        'uuid.location = "56 4d 9d 00 00 01 00 00-00 00 00 00 00 00 00 01"',
        f'sched.swap.derivedName = "/vmfs/volumes/{ds_uuid}/{name}/{name}-5c1d2e3f.vswp"',
        f'extendedConfigFile = "{name}.vmxf"',
    ]
    for i in range(disks):
        stem = name if i == 0 else f"{name}_{i}"
        lines += [f'scsi0:{i}.present = "TRUE"', f'scsi0:{i}.deviceType = "scsi-hardDisk"',
                  f'scsi0:{i}.ctkEnabled = "TRUE"']
        # ESXi writes a disk of another folder as an absolute path: test both forms
        lines.append(f'scsi0:{i}.fileName = "{stem}.vmdk"' if i == 0 else
                     f'scsi0:{i}.fileName = "/vmfs/volumes/{ds_uuid}/{name}/{stem}.vmdk"')
    return "\n".join(lines) + "\n"


def esxi_descriptor(flat: str, capacity: int, ctk: str | None = None,
                    create_type: str = "vmfs", kind: str = "VMFS") -> str:
    """A thin flat disk's descriptor as ESXi writes it (``create_type``/``kind``: another
    disk's, e.g. an RDM's ``vmfsPassthroughRawDeviceMap``/``VMFSRDM``)."""
    text = (
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\n"
        f"parentCID=ffffffff\ncreateType=\"{create_type}\"\n"
    )
    if ctk:
        text += f'changeTrackPath="{ctk}"\n'
    text += (
        f"\n# Extent description\nRW {capacity // 512} {kind} \"{flat}\"\n\n"
        "# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n"
        "ddb.thinProvisioned = \"1\"\nddb.virtualHWVersion = \"13\"\n"
    )
    return text


def write_descriptors(folder: Path, name: str, capacity: int, disks: int = 1) -> None:
    """Each disk's descriptor as ESXi writes it: the simulator leaves it empty, a real
    host never does (Broadcom KB 311009), and preflight reads it (control/vmdkdesc.py)."""
    for i in range(disks):
        stem = name if i == 0 else f"{name}_{i}"
        (folder / f"{stem}.vmdk").write_text(
            esxi_descriptor(f"{stem}-flat.vmdk", capacity, ctk=f"{stem}-ctk.vmdk"))


def write_esxi_files(folder: Path, name: str, capacity: int, disks: int = 1) -> None:
    """Fill the simulator's empty .vmx, descriptors and .nvram the way ESXi would,
    plus the files a real VM folder holds that never travel (-ctk.vmdk, .vswp, log)."""
    (folder / f"{name}.vmx").write_text(esxi_vmx(name, disks=disks))
    (folder / f"{name}.nvram").write_bytes(b"NVRAM\x00" + bytes(range(256)) * 4)
    (folder / f"{name}.vmxf").write_text(f"<Foundry><VM><vmxPathName>{name}.vmx</vmxPathName></VM></Foundry>\n")
    write_descriptors(folder, name, capacity, disks)
    for i in range(disks):
        stem = name if i == 0 else f"{name}_{i}"
        (folder / f"{stem}-ctk.vmdk").write_bytes(b"\x00" * 4096)
    (folder / f"{name}-5c1d2e3f.vswp").write_bytes(b"\x00" * 4096)


class GuestStarter:
    """Plays a guest booting: once ``vm`` is powered on in the simulator, sets tools
    running, an IP and a green heartbeat (the simulator has no guest of its own)."""

    def __init__(self, sim: vcsim_peer.VcsimInfo, vm_name: str, ip: str = "10.0.0.9",
                 after_power_off: bool = False) -> None:
        import threading

        self.sim, self.vm_name, self.ip = sim, vm_name, ip
        self.seen_off = not after_power_off  # a running VM: wait for its next power-on
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with pyvmomi(self.sim) as si:
            while not self._stop.wait(0.1):
                vms = [v for v in objects(si, vim.VirtualMachine) if v.name == self.vm_name]
                try:
                    state = vms[0].runtime.powerState if vms else None
                    self.seen_off = self.seen_off or state == "poweredOff"
                    if state == "poweredOn" and self.seen_off:
                        set_guest(vms[0], tools="guestToolsRunning", ip=self.ip,
                                  heartbeat="green")
                        self.done.set()
                        return
                except vmodl.fault.ManagedObjectNotFound:
                    # unregistered between the listing and the read (a rollback removing
                    # Bob): vSphere answers "The object has already been deleted or has
                    # not been completely created"; the next look finds it gone
                    continue

    def __enter__(self) -> GuestStarter:
        # The state when the caller starts, read before it acts: a VM that is absent or off
        # now needs no power-off first (a resumed cutover may register and power Bob on
        # before the thread's own first look, which then saw him on and waited forever).
        with pyvmomi(self.sim) as si:
            vms = [v for v in objects(si, vim.VirtualMachine) if v.name == self.vm_name]
            if not vms or vms[0].runtime.powerState != "poweredOn":
                self.seen_off = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Disk:
    """A VM disk of the simulated host, backed by a real flat file and the lab's change map."""

    flat: Path
    ctk: Path

    def write(self, offset: int, data: bytes) -> None:
        """A guest write: the bytes land in the flat file, the grains in the change map."""
        with open(self.flat, "r+b") as f:
            f.seek(offset)
            f.write(data)
        t = ChangeTracker(self.ctk)
        try:
            t.mark(offset, len(data))
            t.flush()
        finally:
            t.close()
