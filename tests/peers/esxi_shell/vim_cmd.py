"""``vim-cmd`` for a lab host served as an ESXi host (the test peer).

Answers ESXi's ``vmsvc/...`` and ``solo/registervm`` commands from the lab (a
:class:`~vmigrate_lib.control.lab.LabHost`), printing what ESXi prints: the
layouts of the fixtures in ``tests/fixtures/vimcmd`` (sources in their
SOURCES.md) and, for outputs no public source shows (``get.config``), the same
vmodl-text grammar (marked *guess* below).  It never imports the parser it
tests (``vmigrate_lib.control.esxi``).  Every call appends its argv to the log
named by ``VMG_ESXI_LOG``, so that a test sees exactly which words arrived.

Environment (set by sshd's ``SetEnv``, see ``tests/peers/esxi_shell/__init__.py``):
``VMG_ESXI_LAB`` lab root, ``VMG_ESXI_HOST`` lab host, ``VMG_ESXI_VOLUMES`` the
host's ``/vmfs/volumes``, ``VMG_ESXI_STATE`` the vmid/snapshot-id map.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmigrate_lib.control.host import DiskInfo, PowerState, VmInfo
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.inventory import Inventory
from vmigrate_lib.lab.layout import VMX_SUFFIX, file_lock
from vmigrate_lib.lab.registration import config_for_copy
from vmigrate_lib.lab.vmconfig import VmConfig


def log_call(argv: list[str]) -> None:
    path = os.environ.get("VMG_ESXI_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(argv) + "\n")


class Ids:
    """ESXi's numbers for the lab's names: vmids and snapshot ids, kept in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Ids:
        self._lock = file_lock(self.path.with_suffix(".lock"), what="esxi peer ids")
        self._lock.__enter__()
        self.data: dict[str, Any] = (json.loads(self.path.read_text()) if self.path.exists()
                                     else {"vms": {}, "snaps": {}, "next_vm": 1})
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.write_text(json.dumps(self.data))
        self._lock.__exit__(None, None, None)

    def vmid(self, name: str) -> int:
        vms = self.data["vms"]
        if name not in vms:
            vms[name] = self.data["next_vm"]
            self.data["next_vm"] += 1
        return int(vms[name])

    def snap_id(self, vm: str, lab_id: str) -> int:
        snaps = self.data["snaps"].setdefault(vm, {})
        if lab_id not in snaps:
            snaps[lab_id] = max(snaps.values(), default=0) + 1
        return int(snaps[lab_id])


def q(text: str) -> str:
    """A vmodl string as ESXi prints one: between quotes, nothing escaped."""
    return f'"{text}"'


def fault(name: str, msg: str) -> int:
    """A fault as ESXi 8 prints it (fixture 8.0/fault-notfound.txt); exit 1 (guess)."""
    print(f"(vim.fault.{name}) {{\n   faultCause = (vmodl.MethodFault) null,\n"
          f"   faultMessage = <unset>\n   msg = {q(msg)}\n}}")
    return 1


class Peer:
    def __init__(self) -> None:
        self.lab = LabHost(os.environ["VMG_ESXI_LAB"], os.environ["VMG_ESXI_HOST"])
        self.volumes = os.environ["VMG_ESXI_VOLUMES"]
        self.ids = Ids(Path(os.environ["VMG_ESXI_STATE"]))

    def vm_by_id(self, vmid: str) -> str | None:
        with self.ids as ids:
            for name in Inventory(self.lab.layout, self.lab.name).names():
                if str(ids.vmid(name)) == vmid:
                    return name
        return None

    # --- vmsvc/getallvms: the table of fixture 8.0/getallvms-one.txt ---------------------
    def getallvms(self) -> int:
        inv = Inventory(self.lab.layout, self.lab.name)
        rows = []
        with self.ids as ids:
            for name in inv.names():
                loc = inv.locate(name)
                vmx = loc.config_file.removesuffix(VMX_SUFFIX) + ".vmx"
                rows.append((str(ids.vmid(name)), name, f"[{loc.datastore}] {loc.folder}/{vmx}"))
        w = [max([len(r[i]) for r in rows] + [4]) for i in range(3)]
        print(f"{'Vmid':<{w[0]}}   {'Name':<{w[1]}}   {'File':<{w[2]}}   Guest OS"
              "            Version   Annotation")
        for vmid, name, path in rows:
            print(f"{vmid:<{w[0]}}   {name:<{w[1]}}   {path:<{w[2]}}   otherLinux64Guest   vmx-19")
        return 0

    # --- power -------------------------------------------------------------------------
    def getstate(self, vm: str) -> int:
        words = {PowerState.ON: "Powered on", PowerState.OFF: "Powered off",
                 PowerState.SUSPENDED: "Suspended"}
        print(f"Retrieved runtime info\n{words[self.lab.power_state(vm)]}")
        return 0

    def power(self, vm: str, verb: str) -> int:
        state = self.lab.power_state(vm)
        if verb == "on":
            print("Powering on VM:")
            if state == PowerState.ON:
                return fault("InvalidPowerState", "The attempted operation cannot be performed "
                             "in the current state (Powered on).")
            if vm not in self.overrides().get("question", {}):  # a question holds it off
                self.lab.power_on(vm)
        elif verb == "off":
            print("Powering off VM:")
            if state == PowerState.OFF:
                return fault("InvalidPowerState", "The attempted operation cannot be performed "
                             "in the current state (Powered off).")
            self.lab.power_off(vm)
        else:  # shutdown: asks the guest through VMware Tools
            if state != PowerState.ON:
                return fault("InvalidPowerState", "The attempted operation cannot be performed "
                             "in the current state (Powered off).")
            if not self.lab.config(vm).tools:
                return fault("ToolsUnavailable", "Cannot complete operation because VMware "
                             "Tools is not running in this virtual machine.")
            self.lab.shutdown_guest(vm)
        return 0

    # --- vmodl-text answers --------------------------------------------------------------
    def get_guest(self, vm: str) -> int:
        info = self.lab.find_vm(vm)
        running = "guestToolsRunning" if info.tools_running else "guestToolsNotRunning"
        ip = q(info.guest_ip) if info.guest_ip else "<unset>"
        print("Guest information:\n\n(vim.vm.GuestInfo) {\n"
              f"   toolsStatus = {q('toolsOk' if info.tools_running else 'toolsNotRunning')},\n"
              f"   toolsRunningStatus = {q(running)},\n   toolsVersion = \"12352\",\n"
              f"   ipAddress = {ip},\n   net = <unset>,\n"
              f"   guestState = {q('running' if info.tools_running else 'notRunning')},\n"
              "   hwVersion = \"vmx-19\",\n}")
        return 0

    def get_config(self, vm: str) -> int:
        """``Configuration:`` then a vim.vm.ConfigInfo (*guess*: no public raw output;
        field names and nesting are the vSphere API's VirtualMachineConfigInfo)."""
        info = self.lab.find_vm(vm)
        cfg = self.lab.config(vm)
        out = ["Configuration:", "", "(vim.vm.ConfigInfo) {", f"   name = {q(info.name)},",
               f"   uuid = {q(info.uuid)},", "   version = \"vmx-19\",",
               f"   changeTrackingEnabled = {'true' if cfg.cbt_enabled else 'false'},",
               "   files = (vim.vm.FileInfo) {",
               f"      vmPathName = {q(f'[{info.datastore}] {info.folder}/{info.name}.vmx')},",
               f"      snapshotDirectory = {q(f'[{info.datastore}] {info.folder}')},",
               "   },", "   hardware = (vim.vm.VirtualHardware) {", "      numCPU = 1,",
               "      device = (vim.vm.device.VirtualDevice) ["]
        top = [int(s.id.rpartition("-")[2]) for s in self.lab.list_snapshots(vm)][-1:]
        for d in info.disks:
            # on a snapshot the backing names the running delta (vSphere API,
            # VirtualDiskFlatVer2BackingInfo.fileName/parent)
            stem = d.path.removesuffix("-flat.vmdk")
            desc = f"{stem}-{top[0]:06d}.vmdk" if top else f"{stem}.vmdk"
            out += ["         (vim.vm.device.VirtualDisk) {", f"            key = {d.key},",
                    "            deviceInfo = (vim.Description) {",
                    f"               label = {q(d.label)},",
                    f"               summary = \"{d.capacity // 1024:,} KB\",",
                    "            },",
                    "            backing = (vim.vm.device.VirtualDisk.FlatVer2BackingInfo) {",
                    f"               fileName = {q(f'[{d.datastore}] {desc}')},",
                    f"               datastore = 'vim.Datastore:{d.datastore}',",
                    "               diskMode = \"persistent\",",
                    "               thinProvisioned = true,",
                    "            },", f"            capacityInBytes = {d.capacity},",
                    "         },"]
        out += ["      ],", "   },", "}"]
        print("\n".join(out))
        return 0

    def overrides(self) -> dict[str, Any]:
        """What a test set for this host (``overrides.json`` beside the ids): a pending
        question per VM, consolidationNeeded per VM."""
        p = self.ids.path.with_name("overrides.json")
        return json.loads(p.read_text()) if p.exists() else {}

    def get_autostartseq(self) -> int:
        """The host's autostart entries, set by a test (``overrides.json`` "autostart": VM
        name -> startAction, startOrder), in the vmodl grammar (*guess* for the exact text:
        the fields are the vSphere API's HostAutoStartManager.AutoPowerInfo, and the public
        Ansible module veksh/ansible-esxi library/esxi_autostart.py (load_startup_list)
        reads ``key = 'vim.VirtualMachine:<vmid>'``, ``startOrder``, ``startAction`` and
        an empty list printed ``(vim.host.AutoStartManager.AutoPowerInfo) []``)."""
        entries = self.overrides().get("autostart", {})
        if not entries:
            print("(vim.host.AutoStartManager.AutoPowerInfo) []")
            return 0
        out = ["(vim.host.AutoStartManager.AutoPowerInfo) ["]
        with self.ids as ids:
            items = [(ids.vmid(name), e) for name, e in entries.items()]
        for i, (vmid, e) in enumerate(items):
            out += ["   (vim.host.AutoStartManager.AutoPowerInfo) {",
                    f"      key = 'vim.VirtualMachine:{vmid}',",
                    f"      startOrder = {e.get('startOrder', 1)},", "      startDelay = -1,",
                    '      waitForHeartbeat = "systemDefault",',
                    f"      startAction = {q(e.get('startAction', 'powerOn'))},",
                    "      stopDelay = -1,", '      stopAction = "systemDefault"',
                    "   }," if i < len(items) - 1 else "   }"]
        print("\n".join([*out, "]"]))
        return 0

    def get_filelayout(self, vm: str) -> int:
        """The VM's FileInfo and FileLayout (*guess*: Apache VCL's reader shows both types
        and these fields; the header lines are not known).  A disk's chain is its base
        descriptor then one ``-00000N.vmdk`` per snapshot, as ESXi names deltas."""
        info = self.lab.find_vm(vm)
        numbers = [int(s.id.rpartition("-")[2]) for s in self.lab.list_snapshots(vm)]
        where = f"[{info.datastore}] {info.folder}"
        out = ["VM files:", "(vim.vm.FileInfo) {", f"   vmPathName = {q(f'{where}/{vm}.vmx')},",
               f"   snapshotDirectory = {q(where)},", f"   logDirectory = {q(where)},", "}",
               "File layout:", "(vim.vm.FileLayout) {", "   configFile = (string) [",
               f"      {q(vm + '.nvram')}", "   ],", "   logFile = (string) [",
               "      \"vmware.log\"", "   ],", "   disk = (vim.vm.FileLayout.DiskLayout) ["]
        for d in info.disks:
            stem = d.path.removesuffix("-flat.vmdk")
            files = [f"{stem}.vmdk"] + [f"{stem}-{k:06d}.vmdk" for k in numbers]
            out += ["      (vim.vm.FileLayout.DiskLayout) {", f"         key = {d.key},",
                    "         diskFile = (string) ["]
            out += [f"            {q(f'[{d.datastore}] {f}')}," for f in files]
            out += ["         ],", "      },"]
        out += ["   ],", "   snapshot = <unset>,", "   swapFile = <unset>", "}"]
        print("\n".join(out))
        return 0

    def get_runtime(self, vm: str) -> int:
        """A vim.vm.RuntimeInfo (*guess* at the header; fields: the vSphere API's)."""
        power = {PowerState.ON: "poweredOn", PowerState.OFF: "poweredOff",
                 PowerState.SUSPENDED: "suspended"}[self.lab.power_state(vm)]
        needed = bool(self.overrides().get("consolidationNeeded", {}).get(vm))
        print("Runtime information:\n(vim.vm.RuntimeInfo) {\n   connectionState = \"connected\",\n"
              f"   powerState = {q(power)},\n   question = <unset>,\n"
              f"   consolidationNeeded = {'true' if needed else 'false'},\n}}")
        return 0

    def message(self, vm: str, args: list[str]) -> int:
        """``No message.`` or the pending question (header: Apache VCL's and scripts'
        ``Virtual machine message <id>:``; the choice lines are a *guess*)."""
        questions = self.overrides().get("question", {})
        if vm not in questions:
            print("No message.")
            return 0
        qid, text = questions[vm]
        if args:  # an answer: <id> <choice>
            if args[0] != qid:
                return fault("NotFound", f"No message with id {args[0]}")
            p = self.ids.path.with_name("overrides.json")
            data = self.overrides()
            del data["question"][vm]
            p.write_text(json.dumps(data))
            return 0
        print(f"Virtual machine message {qid}:\n{text}\n   0. Cancel (Cancel)\n"
              "   1. I _Moved It (I _Moved It)\n   2. I _Copied It (I _Copied It)")
        return 0

    # --- snapshots: fixture 7.0/snapshot.get-two.txt -----------------------------------
    def snapshot_get(self, vm: str) -> int:
        print("Get Snapshot:")
        snaps = self.lab.list_snapshots(vm)
        with self.ids as ids:
            for level, s in enumerate(snaps):
                d = "--" * (level + 1)
                print("|-ROOT" if level == 0 else f"{'--' * level}|-CHILD")
                t = time.gmtime(s.created)
                when = f"{t.tm_mon}/{t.tm_mday}/{t.tm_year} {t.tm_hour}:{t.tm_min}:{t.tm_sec}"
                print(f"{d}Snapshot Name        : {s.name}\n"
                      f"{d}Snapshot Id        : {ids.snap_id(vm, s.id)}\n"
                      f"{d}Snapshot Desciption  :{' ' + s.description if s.description else ''}\n"
                      f"{d}Snapshot Created On  : {when}\n"
                      f"{d}Snapshot State       : powered on")
        return 0

    def snapshot_create(self, vm: str, args: list[str]) -> int:
        name, desc = args[0], args[1] if len(args) > 1 else ""
        if args[2:4] not in ([], ["0", "0"], ["0"]):
            return fault("InvalidArgument", "the test peer takes no memory or quiesce snapshot")
        print("Create Snapshot:")
        # ESXi takes a new snapshot as a child of the current one, keeping the older
        # (vSphere API, VirtualMachine.CreateSnapshot_Task); the lab does on request
        self.lab.create_snapshot(vm, name, desc, keep_older=True)
        return 0

    def snapshot_remove(self, vm: str, sid: str) -> int:
        with self.ids as ids:
            lab_id = next((s.id for s in self.lab.list_snapshots(vm)
                           if str(ids.snap_id(vm, s.id)) == sid), None)
        if lab_id is None:
            return fault("NotFound", f"Snapshot {sid} not found")
        print("Remove Snapshot:")
        self.lab.remove_snapshot(vm, lab_id)
        return 0

    # --- registration ------------------------------------------------------------------
    def registervm(self, args: list[str]) -> int:
        path = args[0]
        rel = os.path.relpath(path, self.volumes)
        ds, _, rest = rel.partition("/")
        folder, _, vmx = rest.rpartition("/")
        cfg = vmx.removesuffix(".vmx") + VMX_SUFFIX
        if rel.startswith("..") or not vmx.endswith(".vmx") or not (
                Path(self.volumes) / ds / folder / cfg).exists():
            return fault("NotFound", "The object or item referred to could not be found.")
        name = args[1] if len(args) > 1 else vmx.removesuffix(".vmx")
        inv = Inventory(self.lab.layout, self.lab.name)
        if inv.lookup(name) is not None:
            return fault("AlreadyExists", "The specified key, name, or identifier already exists.")
        self.config_from_copy(Path(self.volumes) / ds / folder, cfg, name)
        inv.add(name, ds, folder, cfg)
        with self.ids as ids:
            print(ids.vmid(name))
        return 0

    @staticmethod
    def config_from_copy(vmdir: Path, cfg_file: str, name: str) -> None:
        """The lab config copied under Bob's name still names Alice and her disk files;
        ESXi registers what the .vmx says, and vmigrate rewrites a real .vmx to name
        Bob's files (control/vmxtext.py), so the peer makes the config name
        Bob and his files as the lab's own registration does (config_for_copy)."""
        copied = VmConfig.load(vmdir / cfg_file)
        if copied.name == name:
            return
        src = VmInfo(name=copied.name, uuid=copied.uuid, host="", power=PowerState.OFF,
                     datastore="", folder=vmdir.name, disks=tuple(
                         DiskInfo(key=d.key, label=d.label, datastore="",
                                  path=f"{vmdir.name}/{d.file}", capacity=d.capacity)
                         for d in copied.disks))
        new = config_for_copy(vmdir, name, src, None, copied.workload)
        new.tools = copied.tools
        new.save(vmdir / cfg_file)

    def unregister(self, vm: str) -> int:
        if self.lab.power_state(vm) != PowerState.OFF:
            return fault("InvalidPowerState", "The attempted operation cannot be performed in "
                         "the current state (Powered on).")
        self.lab.unregister_vm(vm)
        return 0


def main(argv: list[str]) -> int:
    log_call(["vim-cmd", *argv])
    if not argv:
        print("Commands available under /:\nhbrsvc/       internalsvc/  solo/         vmsvc/")
        return 0
    peer, cmd, args = Peer(), argv[0], argv[1:]
    if cmd == "vmsvc/getallvms":
        return peer.getallvms()
    if cmd == "solo/registervm" and args:
        return peer.registervm(args)
    if cmd == "hostsvc/autostartmanager/get_autostartseq":
        return peer.get_autostartseq()
    by_vm: dict[str, Callable[[str, list[str]], int]] = {
        "vmsvc/power.getstate": lambda vm, a: peer.getstate(vm),
        "vmsvc/power.on": lambda vm, a: peer.power(vm, "on"),
        "vmsvc/power.off": lambda vm, a: peer.power(vm, "off"),
        "vmsvc/power.shutdown": lambda vm, a: peer.power(vm, "shutdown"),
        "vmsvc/get.guest": lambda vm, a: peer.get_guest(vm),
        "vmsvc/get.config": lambda vm, a: peer.get_config(vm),
        "vmsvc/snapshot.get": lambda vm, a: peer.snapshot_get(vm),
        "vmsvc/snapshot.create": lambda vm, a: peer.snapshot_create(vm, a),
        "vmsvc/snapshot.remove": lambda vm, a: peer.snapshot_remove(vm, a[0]),
        "vmsvc/unregister": lambda vm, a: peer.unregister(vm),
        "vmsvc/get.filelayout": lambda vm, a: peer.get_filelayout(vm),
        "vmsvc/get.runtime": lambda vm, a: peer.get_runtime(vm),
        "vmsvc/message": lambda vm, a: peer.message(vm, a),
    }
    if cmd not in by_vm or not args:
        print(f"Unknown command: '{cmd}'", file=sys.stderr)  # guess at ESXi's wording
        return 1
    vm = peer.vm_by_id(args[0])
    if vm is None:
        return fault("NotFound", f'Unable to find a VM corresponding to "{args[0]}"')
    return by_vm[cmd](vm, args[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
