"""The embedded lab hypervisor behind the :class:`Host` interface.

Hosts are folders, VMs are config files plus sparse flat disks, a running VM is
a guest process (see :mod:`vmigrate_lib.lab`).  Everything lives on disk, so a
sync in one process and a cutover in another, days later, see the same lab.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..errors import DestinationExists, LabError, PowerError, TimeoutExpired, ToolsUnavailable
from ..lab.handle import VmHandle, log_tail
from ..lab.layout import RUNTIME_SUFFIXES, VMX_SUFFIX
from ..lab.power import child_running, kill_guest, spawn_guest
from ..lab.registration import config_for_copy, guest_ip_for
from ..lab.vmconfig import VmConfig
from ..lab.workload import WorkloadSpec
from .host import PowerState, RetirePlan, VmInfo
from .lab_storage import LabStorage


class LabHost(LabStorage):
    """One lab host: ``<root>/hosts/<host>``; what is stored is :class:`LabStorage`'s,
    what runs (power, the guest, registration, readiness) is here."""

    # --- power -------------------------------------------------------------------------
    def power_state(self, vm: str) -> PowerState:
        return PowerState.ON if self.handle(vm).pid() is not None else PowerState.OFF

    def power_on(self, vm: str, timeout: float = 120.0) -> None:
        """Start the guest; returns once it answers (its boot check may still run)."""
        h = self.handle(vm)
        with h.locked(timeout):
            if h.pid() is not None:
                return
            h.config()  # a damaged config fails here, not in the guest
            child = spawn_guest(h.vmdir, h.loc.config_file)

            def up(st: dict[str, Any] | None) -> bool:
                # the guest is known once it holds its power lock; until then our child
                # lives (or gave way to a guest started by a killed earlier launcher)
                if st is None and h.pid() is None and not child_running(child):
                    raise PowerError(
                        f"VM {vm} stopped while powering on", vm=vm, log=log_tail(h.vmdir)
                    )
                return st is not None

            h.wait_state(up, timeout, "power on")

    def power_off(self, vm: str, timeout: float = 120.0) -> None:
        h = self.handle(vm)
        with h.locked(timeout):
            kill_guest(h.vmdir, timeout)

    def shutdown_guest(self, vm: str) -> None:
        """As ``ShutdownGuest``: a guest without VMware Tools (``tools: false``) cannot
        be asked, :class:`ToolsUnavailable` at once (a powered-off VM: PowerError)."""
        h = self.handle(vm)
        if h.pid() is not None and not h.config().tools:
            raise ToolsUnavailable(f"guest shutdown of VM {vm} failed: VMware Tools are not "
                                   "running in the guest", vm=vm)
        h.guest("shutdown", 10.0)

    def set_tools(self, vm: str, running: bool) -> None:
        """Give the guest VMware Tools or take them away (live if it runs)."""

        def offline(m: Any) -> None:
            m.config.tools = running
            m.save()

        self.handle(vm).run("set_tools", offline, lambda r: None, tools=running)

    def is_runtime_file(self, name: str) -> bool:
        """VMware's runtime files and the lab's own (:data:`~vmigrate_lib.lab.layout.RUNTIME_SUFFIXES`)."""
        return super().is_runtime_file(name) or name.endswith(RUNTIME_SUFFIXES)

    def set_workload(self, vm: str, spec: WorkloadSpec) -> None:
        """Change a VM's workload (live if it runs); e.g. ``rate_mb_s=0`` to quiesce it."""
        spec.validate()

        def offline(m: Any) -> None:
            m.config.workload = spec
            m.save()

        self.handle(vm).run("set_workload", offline, lambda r: None, workload=spec.to_dict())

    def flush_acks(self, vm: str) -> None:
        """Make the running guest persist its ack map now (tests, evidence)."""
        self.handle(vm).guest("flush_acks")

    # --- registration ------------------------------------------------------------------
    def register_vm(
        self,
        name: str,
        datastore: str,
        folder: str,
        source: VmInfo,
        network_map: Mapping[str, str] | None = None,
    ) -> VmInfo:
        vmdir = self.datastore_path(datastore) / folder
        with self.inventory.locked() as entries:
            cfg_file = f"{name}{VMX_SUFFIX}"
            want = f"[{datastore}] {folder}/{cfg_file}"
            if name in entries:
                if entries[name] == want:
                    return self.find_vm(name)  # re-run after a crash: already done
                raise DestinationExists(
                    f"a VM named {name!r} is already registered on {self.name}", vm=name
                )
            cfg = config_for_copy(vmdir, name, source, network_map, self.register_workload)
            if (vmdir / cfg_file).is_file():  # the source's config, copied: its guest's tools
                cfg.tools = VmConfig.load(vmdir / cfg_file).tools
            cfg.save(vmdir / cfg_file)
            entries[name] = want
        return self.find_vm(name)

    # --- retiring the source (cutover.identity: retire-source) ---------------------------
    def retire_plan(self, vm: str, new_name: str, note: str) -> RetirePlan | None:
        """A lab VM has a name to give up (inventory and config) but no NIC link state
        and no autostart: the rename is the whole retire."""
        return RetirePlan(name=vm, new_name=new_name, vm_id=self.config(vm).uuid,
                          saved={"note": note})

    def retire_vm(self, plan: RetirePlan) -> None:
        self._rename(plan, plan.name, plan.new_name)

    def restore_vm(self, plan: RetirePlan) -> None:
        self._rename(plan, plan.new_name, plan.name)

    def _rename(self, plan: RetirePlan, old: str, new: str) -> None:
        """Inventory entry, then config name (a re-run finishes either); only the VM
        the plan names (its uuid) is renamed."""
        with self.inventory.locked() as entries:
            if new not in entries:
                if VmHandle(self.inventory.locate(old)).config().uuid != plan.vm_id:
                    raise DestinationExists(f"VM {old} on {self.name} is not the VM vmigrate "
                                            f"retired ({plan.vm_id})", vm=old)
                entries[new] = entries.pop(old)
        h = self.handle(new)
        if h.config().uuid != plan.vm_id:
            raise DestinationExists(f"a VM named {new!r} is already registered on {self.name}",
                                    vm=new)
        with h.locked():
            cfg = h.config()
            if cfg.name != new:
                cfg.name = new
                cfg.save(h.loc.config_path)

    def unregister_vm(self, name: str) -> None:
        h = self.handle(name)
        if h.pid() is not None:
            raise PowerError(f"VM {name} is powered on; power it off before unregistering", vm=name)
        self.inventory.remove(name)

    def wait_ready(self, vm: str, timeout: float) -> VmInfo:
        """Wait for the boot check and VMware Tools (a guest with ``tools: false`` never
        gets there, as on ESXi); a failed check (torn or missing blocks) raises LabError."""
        if not self.config(vm).tools:
            t0 = time.monotonic()
            self.wait_running(vm, timeout)  # a failed boot check still says so first
            time.sleep(max(0.0, timeout - (time.monotonic() - t0)))  # Tools never come
            raise TimeoutExpired(f"VM {vm} was not ready within {timeout:.0f} s: no VMware "
                                 "Tools running", vm=vm, timeout=timeout,
                                 hint="check the guest's VMware Tools, or use cutover.ready: "
                                 "power-and-probes with probes")
        return self.wait_running(vm, timeout)

    def wait_running(self, vm: str, timeout: float) -> VmInfo:
        """Powered on and the boot check passed (it proves the copy; no Tools needed)."""
        h = self.handle(vm)

        def ready(st: dict[str, Any] | None) -> bool:
            if st is None:
                if h.pid() is None:
                    raise PowerError(f"VM {vm} is powered off", vm=vm, log=log_tail(h.vmdir))
                return False
            if st.get("state") == "boot-failed":
                problems = [p for d in st["boot"]["disks"] for p in d["problems"]]
                raise LabError(
                    f"VM {vm} failed its boot check: {'; '.join(problems)}",
                    vm=vm,
                    boot=st["boot"],
                    hint="the copy is damaged or incomplete; re-run the final sync and certify",
                )
            return st.get("state") == "running"

        h.wait_state(ready, timeout, "boot check")
        return self.find_vm(vm)


__all__ = ["LabHost", "guest_ip_for"]
