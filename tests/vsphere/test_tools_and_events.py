"""Issue 11 items 3 and 8 against govmomi's simulator (tests/peers/README.md).

* A guest without VMware Tools: the project's peer (tests/peers/vcsim/tools.go)
  answers ``ShutdownGuest`` with the ``ToolsUnavailable`` fault as ESXi does
  (vSphere API reference); the adapter turns it into :class:`ToolsUnavailable`
  at once, so the cutover does not wait out ``shutdown_timeout``.  Only a real host
  shows its own fault message and how a real guest without Tools boots.
* The VM's history: vCenter's ``EventManager.QueryEvents`` by entity (pyvmomi
  #424) returns the ``VmReconfiguredEvent`` of a disk edit (an extend, KB 2090639)
  with its ``configSpec``; a rename is not a doubt; the simulator's ESX model
  answers ``NotImplemented``: None (whether a real standalone ESXi keeps enough
  event history is not shown here: a guess either way).  Which events a real vCenter records
  for a revert (a ``TaskEvent`` is assumed, not shown by the simulator) only a real
  vCenter shows.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.vsphere import vsim
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import ToolsUnavailable

ESX_VM = "ha-host_VM0"
VPX_VM = "DC0_H0_VM0"


def _no_tools(si: Any, name: str) -> None:
    vm = vsim.vm(si, name)
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="vmigrate.test.noTools",
                                                                 value="TRUE")])
    WaitForTask(vm.ReconfigVM_Task(spec))
    vsim.set_guest(vm, tools="guestToolsNotRunning")


def test_shutdown_without_tools_is_tools_unavailable(host: VsphereHost, si: Any) -> None:
    """Before: the fault became a plain PowerError, which the cutover swallowed."""
    _no_tools(si, ESX_VM)
    assert not host.find_vm(ESX_VM).tools_running
    with pytest.raises(ToolsUnavailable, match="VMware Tools are not running") as ei:
        host.shutdown_guest(ESX_VM)
    assert ei.value.fields["fault"] == "ToolsUnavailable"
    assert "allow_hard_poweroff" in ei.value.hint
    assert host.power_state(ESX_VM) == PowerState.ON  # nothing happened
    vsim.set_guest(vsim.vm(si, ESX_VM), tools="guestToolsRunning")
    host.shutdown_guest(ESX_VM)  # with Tools: asked, and the guest goes off
    assert host.wait_powered_off(ESX_VM, timeout=10) is True


@pytest.mark.parametrize("vcsim", ["vpx"], indirect=True)
def test_changes_since_reads_disk_reconfigure(host: VsphereHost, si: Any) -> None:
    """A disk edit after ``since`` is an extend; a rename is ignored; before ``since``
    nothing (before: the engine never asked)."""
    vm = vsim.vm(si, VPX_VM)
    WaitForTask(vm.ReconfigVM_Task(vim.vm.ConfigSpec(name=VPX_VM)))  # a rename: no doubt
    t0 = time.time()
    time.sleep(0.05)
    assert host.changes_since(VPX_VM, t0) == []
    disk = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
    disk.capacityInKB += 1024
    change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    WaitForTask(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])))
    got = host.changes_since(VPX_VM, t0)
    assert got is not None and [c.kind for c in got] == ["extend"], got
    assert str(disk.key) in got[0].detail and got[0].at > t0
    assert host.changes_since(VPX_VM, time.time() + 1) == []


def test_changes_since_on_standalone_esx_is_unknown(host: VsphereHost) -> None:
    """The simulator's ESX model answers QueryEvents with NotImplemented: None, and the
    engine relies on the late whole-disk certify."""
    assert host.changes_since(ESX_VM, time.time() - 60) is None
