"""EsxiHost: a standalone ESXi host driven over SSH alone, with ESXi's own commands.

The control plane is ``vim-cmd`` (inventory, snapshots, power, questions,
registration) and ``vmkfstools`` (new disks) on the same SSH connection as the
data-plane agent, so nothing goes through the vSphere API: the free licence, which
refuses every API write, does not apply (ghettoVCB and XSIBackup work this way).
VMs are addressed by the vmid ``getallvms`` gives for their name, looked up again
at every call (a vmid changes when a VM is registered anew).  vim-cmd has no
changed-block query, so disks are reported without change tracking and the engine
hash-compares them.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ...dataplane.ssh import SshConnection, open_ssh_datastore
from ...dataplane.sshconfig import SshSettings
from ...errors import (
    ChangeIdInvalid,
    DatastoreNotFound,
    DestinationExists,
    DiskChainError,
    ParameterError,
    PowerError,
    PowerOnQuestion,
    TimeoutExpired,
    VimCmdError,
    VmAmbiguous,
    VmNotFound,
)
from ...extents import Extent
from ...params import EsxiHostParams
from .. import placement, vmxtext
from ..dspaths import flat_path
from ..host import (
    DiskInfo,
    Host,
    HostCheck,
    PowerState,
    SnapshotInfo,
    VmInfo,
)
from . import vimcmd
from .shell import EsxiShell, check_word
from .snapshots import DELTA, EsxiSnapshots

if TYPE_CHECKING:
    from ...dataplane.datastore import Datastore

#: ``[datastore1] alice/alice.vmdk``
_DS_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\] (?P<path>.+)$")
#: VMFS volume UUIDs (``5f1a2b3c-aaaaaaaa-bbbb-001122334455``) beside the names
_VMFS_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{12}$")
PROVISIONING = ("thin", "zeroedthick", "eagerzeroedthick")


def ds_path(text: str, command: str) -> tuple[str, str]:
    m = _DS_PATH.match(text)
    if m is None:
        raise vimcmd.parse_error(command, text, "not a datastore path '[ds] folder/file'")
    return m["ds"], m["path"]


class EsxiHost(EsxiSnapshots, Host):
    """One ESXi host over SSH (``type: esxi``)."""

    def __init__(self, hp: EsxiHostParams, *, connection: SshConnection | None = None) -> None:
        self.hp = hp
        self.settings = SshSettings.from_host_params(hp)
        self.conn = connection or SshConnection(self.settings)
        self.shell = EsxiShell(self.conn, hp.command_timeout)
        self.name = hp.host
        self.datastore_root = hp.datastore_root
        self.snapshot_remove_timeout = hp.snapshot_remove_timeout
        self._notes: list[str] = []  #: what the config rewrite changed, for the journal
        self.conn.transport()  # a wrong address, key or host key is found now

    # --- inventory -------------------------------------------------------------------
    def _rows(self) -> list[vimcmd.VmRow]:
        return vimcmd.parse_getallvms(self.shell.vim_cmd("vmsvc/getallvms").stdout)

    def vmid(self, name: str) -> int:
        rows = [r for r in self._rows() if r.name == name]
        if not rows:
            raise VmNotFound(f"no VM named {name!r} on ESXi host {self.name}", vm=name,
                             host=self.name, hint="check the name: vim-cmd vmsvc/getallvms "
                             "on the host lists the registered VMs")
        if len(rows) > 1:
            raise VmAmbiguous(f"{len(rows)} VMs are named {name!r} on {self.name}", vm=name,
                              vmids=[r.vmid for r in rows],
                              hint="rename all but one (their vmids are in the error's fields)")
        return rows[0].vmid

    def _vmodl(self, command: str, vmid: int, header: str | None = None) -> vimcmd.VmodlObject:
        r = self.shell.vim_cmd(command, str(vmid))
        return vimcmd.parse_vmodl(r.shown, r.stdout, header)

    def _config(self, vmid: int) -> tuple[str, str, str, tuple[DiskInfo, ...]]:
        """uuid, datastore, folder and disks from ``get.config``."""
        cfg = self._vmodl("vmsvc/get.config", vmid)
        cmd = f"vim-cmd vmsvc/get.config {vmid}"
        vmx, uuid = cfg.get("files", vimcmd.VmodlObject("")).get("vmPathName"), cfg.get("uuid")
        if not isinstance(vmx, str) or not isinstance(uuid, str):
            raise vimcmd.parse_error(cmd, str(cfg.fields)[:200], "no files.vmPathName or uuid")
        ds, vmx_path = ds_path(vmx, cmd)
        devices = cfg.get("hardware", vimcmd.VmodlObject("")).get("device", [])
        disks = tuple(self._disk(d, cmd) for d in devices
                      if isinstance(d, vimcmd.VmodlObject) and d.type.endswith(".VirtualDisk"))
        return uuid, ds, posixpath.dirname(vmx_path), disks

    def find_vm(self, name: str) -> VmInfo:
        vmid = self.vmid(name)
        uuid, ds, folder, disks = self._config(vmid)
        guest = self._vmodl("vmsvc/get.guest", vmid, "Guest information:")
        tools = guest.get("toolsRunningStatus") == "guestToolsRunning"
        ip = guest.get("ipAddress")
        return VmInfo(name=name, uuid=uuid, host=self.name, power=self.power_state_of(vmid),
                      datastore=ds, folder=folder, disks=disks,
                      guest_ip=ip if tools and isinstance(ip, str) else None,
                      tools_running=tools)

    @staticmethod
    def _disk(d: vimcmd.VmodlObject, cmd: str) -> DiskInfo:
        backing = d.get("backing", vimcmd.VmodlObject(""))
        name, key = backing.get("fileName"), d.get("key")
        cap = d.get("capacityInBytes")
        if not isinstance(name, str) or not isinstance(key, int) or not isinstance(cap, int):
            raise vimcmd.parse_error(cmd, str(d.fields)[:200],
                                     "a disk without key, backing.fileName or capacityInBytes")
        ds, desc = ds_path(name, cmd)
        # on a snapshot the backing is the running delta (its ``parent`` chain leads to
        # the base: vSphere API, VirtualDiskFlatVer2BackingInfo.parent); vmigrate reads
        # the base, named as ESXi names deltas after it (alice-000002.vmdk -> alice.vmdk)
        desc = DELTA.sub(".vmdk", desc)
        flat = flat_path(desc)
        label = d.get("deviceInfo", vimcmd.VmodlObject("")).get("label", f"disk {key}")
        # vim-cmd has no changed-block query: reported off, so the engine hash-compares
        return DiskInfo(key=key, label=str(label), datastore=ds, path=flat, capacity=cap,
                        thin=bool(backing.get("thinProvisioned", False)), cbt_enabled=False)

    def vm_exists(self, name: str) -> bool:
        return any(r.name == name for r in self._rows())

    def datastores(self) -> list[str]:
        r = self.shell.run(["ls", "-1", self.datastore_root])
        if r.rc != 0:
            raise DatastoreNotFound(f"cannot list {self.datastore_root} on {self.name}: "
                                    f"{r.stderr.strip()}", host=self.name)
        return sorted(n for n in r.stdout.split("\n") if n and not _VMFS_UUID.match(n))

    def open_datastore(self, name: str) -> Datastore:
        """The datastore's folder through the agent, on this host's SSH connection."""
        if name not in self.datastores():
            raise DatastoreNotFound(f"no datastore {name!r} on ESXi host {self.name}",
                                    datastore=name, host=self.name)
        root = posixpath.join(self.datastore_root, name)
        return open_ssh_datastore(name, root, self.settings, connection=self.conn)

    def disk_chains(self, vm: str) -> dict[int, list[str]]:
        """Each disk's files, base descriptor first (``get.filelayout``'s DiskLayout)."""
        vmid = self.vmid(vm)
        r = self.shell.vim_cmd("vmsvc/get.filelayout", str(vmid))
        layout = next((o for o in vimcmd.parse_vmodl_objects(r.shown, r.stdout)
                       if o.type == "vim.vm.FileLayout"), None)
        if layout is None:
            raise vimcmd.parse_error(r.shown, r.stdout, "no vim.vm.FileLayout")
        chains: dict[int, list[str]] = {}
        for d in layout.get("disk", []):
            files = d.get("diskFile") if isinstance(d, vimcmd.VmodlObject) else None
            if not isinstance(files, list) or not isinstance(d.get("key"), int):
                raise vimcmd.parse_error(r.shown, r.stdout, "a DiskLayout without key or diskFile")
            chains[d.get("key")] = [str(f) for f in files]
        return chains

    def consolidation_needed(self, vm: str) -> bool:
        """``get.runtime``'s ``consolidationNeeded``: the disks may run on a delta the
        snapshot tree no longer shows (a removal whose consolidation failed)."""
        vmid = self.vmid(vm)
        rt = self._vmodl("vmsvc/get.runtime", vmid)
        return rt.get("consolidationNeeded") is True

    def migration_checks(self, vm: VmInfo) -> list[HostCheck]:
        """Every disk in the VM's folder on one datastore (:mod:`..placement`: two disks
        of one name on two datastores would be copied into one file), then the chain."""
        return [*self.recheck(vm), self._chain_check(vm)]

    def in_autostart(self, vm: str) -> bool | None:
        """``vim-cmd hostsvc/autostartmanager/get_autostartseq``: an entry keyed
        ``'vim.VirtualMachine:<vmid>'`` whose ``startAction`` is powerOn (an entry set to
        ``none``, or ``PowerOff`` as some tools disable one, does not start the VM)."""
        key = f"vim.VirtualMachine:{self.vmid(vm)}"
        r = self.shell.vim_cmd("hostsvc/autostartmanager/get_autostartseq")
        for entry in vimcmd.parse_vmodl_array(r.shown, r.stdout):
            if isinstance(entry, vimcmd.VmodlObject) and entry.get("key") == key:
                return str(entry.get("startAction", "")).lower() == "poweron"
        return False

    def recheck(self, vm: VmInfo) -> list[HostCheck]:
        """Before every cycle: the disks still in the VM's folder (a disk added since)."""
        return [placement.disk_datastores(vm), placement.disk_placement(vm)]

    def _chain_check(self, vm: VmInfo) -> HostCheck:
        """No disk on a delta that no snapshot explains, no consolidation pending: the
        base vmigrate reads would be stale (real-esxi.md F1).  A delta under a snapshot
        (this migration's leftover) is the preflight's snapshot check's to judge."""
        snaps = self.list_snapshots(vm.name)
        deltas = [f for chain in self.disk_chains(vm.name).values() for f in chain[1:]
                  if DELTA.search(f)]
        if self.consolidation_needed(vm.name):
            why = "consolidation needed (get.runtime consolidationNeeded)"
        elif deltas and not snaps:
            why = f"on a delta no snapshot explains: {', '.join(deltas)}"
        else:
            return HostCheck("disk chain", True, "every disk on its base file" if not deltas
                             else f"deltas of {len(snaps)} snapshot(s)")
        return HostCheck("disk chain", False, why, DiskChainError(
            f"VM {vm.name}: {why}; vmigrate would read a stale base disk",
            hint="consolidate the VM's disks on the host first (vSphere Client: Snapshots > "
            "Consolidate), then run again", vm=vm.name, disks=deltas))

    # --- change tracking: none through vim-cmd ---------------------------------------
    def enable_change_tracking(self, vm: str) -> VmInfo:
        raise ChangeIdInvalid(
            f"an esxi host cannot turn change tracking on for {vm} (vim-cmd has no such command)",
            hint="set sync.change_tracking to hash or auto (hash-compare), or "
            "sync.allow_enable_cbt: false", vm=vm)

    def query_changed_areas(self, vm: str, snapshot: SnapshotInfo, disk_key: int,
                            since: str) -> Iterator[Extent]:
        raise ChangeIdInvalid(f"an esxi host has no changed-block query ({vm}, disk {disk_key})",
                              hint="the engine hash-compares the disk instead", vm=vm)

    # --- power ------------------------------------------------------------------------
    def power_state_of(self, vmid: int) -> PowerState:
        return vimcmd.parse_power_state(
            self.shell.vim_cmd("vmsvc/power.getstate", str(vmid)).stdout, vmid)

    def power_state(self, vm: str) -> PowerState:
        return self.power_state_of(self.vmid(vm))

    def question(self, vm: str) -> vimcmd.Question | None:
        """The question the VM waits on (``vmsvc/message``), if any."""
        vmid = self.vmid(vm)
        return vimcmd.parse_message(self.shell.vim_cmd("vmsvc/message", str(vmid)).stdout, vmid)

    def power_on(self, vm: str, timeout: float = 120.0) -> None:
        """``power.on``; a VM that stays off is an error naming the question it waits on."""
        vmid = self.vmid(vm)
        if self.power_state_of(vmid) == PowerState.ON:
            return
        self.shell.vim_cmd("vmsvc/power.on", str(vmid), timeout=timeout)
        if self.power_state_of(vmid) != PowerState.ON:
            q = self.question(vm)
            if q is None:
                raise PowerError(f"VM {vm} did not power on", vm=vm,
                                 hint="see the VM's vmware.log on the host")
            raise PowerOnQuestion(
                f"VM {vm} did not power on: it asks {q.text!r}", vm=vm,
                question={"id": q.id, "text": q.text},
                hint=f"answer it on the host (vim-cmd vmsvc/message {vmid} {q.id} <choice>; "
                f"vim-cmd vmsvc/message {vmid} lists the choices), then run again")

    def power_off(self, vm: str, timeout: float = 120.0) -> None:
        vmid = self.vmid(vm)
        if self.power_state_of(vmid) != PowerState.OFF:
            self.shell.vim_cmd("vmsvc/power.off", str(vmid), timeout=timeout)

    def shutdown_guest(self, vm: str) -> None:
        self.shell.vim_cmd("vmsvc/power.shutdown", str(self.vmid(vm)))

    # --- registration and readiness -----------------------------------------------------
    def register_vm(self, name: str, datastore: str, folder: str, source: VmInfo,
                    network_map: Mapping[str, str] | None = None) -> VmInfo:
        """``solo/registervm`` of ``[datastore] folder/<name>.vmx`` (written beforehand);
        already registered from that file counts as done (re-runs)."""
        vmx_rel = posixpath.join(folder, f"{name}.vmx")
        for row in self._rows():
            if row.name == name:
                if (row.datastore, row.vmx) == (datastore, vmx_rel):
                    return self.find_vm(name)
                raise DestinationExists(f"a VM named {name!r} is already registered on "
                                        f"{self.name}", vm=name)
        vmx = posixpath.join(self.datastore_root, datastore, vmx_rel)
        r = self.shell.vim_cmd("solo/registervm", check_word(vmx, "vmx path"),
                               check_word(name, "VM name"))
        vimcmd.parse_registered_id(r.stdout, vmx)
        return self.find_vm(name)

    def prepare_config_files(self, name: str, source: VmInfo, files: Mapping[str, bytes],
                             renames: Mapping[str, str]) -> dict[str, bytes]:
        """Bob's ``<name>.vmx`` and disk descriptors naming his files, as for vSphere
        (:mod:`..vmxtext`, pure text: no pyVmomi); files this host cannot reach are
        disconnected or dropped, with a note.  A folder without a ``.vmx`` (not a
        VMware VM: the lab's own config) is renamed and copied as it is."""
        if not any(n.endswith(".vmx") for n in files):
            return super().prepare_config_files(name, source, files, renames)
        return vmxtext.prepare(name, source, files, renames, self._volumes(), self._notes)

    def _volumes(self) -> list[str]:
        """What ``/vmfs/volumes`` holds: datastore names and their volume UUIDs."""
        r = self.shell.run(["ls", "-1", self.datastore_root])
        return [n for n in r.stdout.split("\n") if n] if r.rc == 0 else []

    def take_notes(self) -> list[str]:
        notes, self._notes[:] = list(self._notes), []
        return notes

    def unregister_vm(self, name: str) -> None:
        vmid = self.vmid(name)
        if self.power_state_of(vmid) != PowerState.OFF:
            raise PowerError(f"VM {name} is powered on; power it off before unregistering",
                             vm=name)
        self.shell.vim_cmd("vmsvc/unregister", str(vmid))

    def wait_ready(self, vm: str, timeout: float) -> VmInfo:
        """VMware Tools running and an IP (``get.guest``), polled every 2 s."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.find_vm(vm)
            if info.tools_running and info.guest_ip:
                return info
            if time.monotonic() >= deadline:
                raise TimeoutExpired(f"VM {vm} has no running VMware Tools and IP after "
                                     f"{timeout:.0f} s", vm=vm, timeout=timeout)
            time.sleep(2.0)

    # --- disks ---------------------------------------------------------------------------
    def create_disk(self, datastore: str, path: str, capacity: int,
                    provisioning: str = "thin") -> str:
        """``vmkfstools -c <KiB>k -d <kind> /vmfs/volumes/<ds>/<path>`` (a ``.vmdk``
        descriptor and its ``-flat.vmdk``); the flat file's datastore path."""
        if provisioning not in PROVISIONING or capacity <= 0 or capacity % 1024:
            raise ParameterError(f"a new disk needs a size in whole KiB and one of "
                                 f"{', '.join(PROVISIONING)}", parameter="provisioning")
        full = posixpath.join(self.datastore_root, datastore, path)
        r = self.shell.run(["vmkfstools", "-c", f"{capacity // 1024}k", "-d", provisioning,
                            check_word(full, "disk path")])
        if r.rc != 0:
            raise VimCmdError(f"{r.shown} failed (exit {r.rc}): {r.stderr.strip()[:300]}",
                                hint="check the datastore's free space and that the folder "
                                "exists", command=r.shown)
        return flat_path(path)

    def close(self) -> None:
        self.conn.close()


__all__ = ["PROVISIONING", "EsxiHost", "ds_path"]
