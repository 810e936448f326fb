"""Where a VM's disks are: every one in the VM's own folder on its one datastore.

vmigrate copies that folder to one destination folder, naming each copy after the disk's
file name, and rebuilds Bob's ``.vmx`` from it.  A disk elsewhere breaks both: vSphere
names a VM's files after the VM in a folder of its name on whichever datastore holds them
(vSphere Web Services API, Datastore: "specifying My_Datastore as a location for a virtual
machine called MyVm results in a datastore location of My_Datastore\\MyVm\\MyVm.vmx"), so a
second disk created on another datastore is commonly ``[ds2] alice/alice.vmdk``, the first
disk's very name: both would be copied into one file.  Pure: every host type's checks
(vSphere, ESXi over SSH) use these on the :class:`VmInfo` they read.
"""

from __future__ import annotations

from ..errors import DiskMismatch
from .host import HostCheck, VmInfo
from .vmxtext import disks_outside_folder


def disk_datastores(vm: VmInfo) -> HostCheck:
    """One datastore for every disk: vmigrate copies one VM folder to one datastore."""
    names = sorted({d.datastore for d in vm.disks} | {vm.datastore})
    if len(names) <= 1:
        return HostCheck("disk datastores", True, f"every disk on [{vm.datastore}]")
    return HostCheck("disk datastores", False, f"on {len(names)} datastores: {', '.join(names)}",
                     DiskMismatch(
                         f"VM {vm.name} has disks on {len(names)} datastores ({', '.join(names)}); "
                         f"vmigrate copies one folder to one datastore",
                         hint="move every disk into the VM's folder (storage migration) first",
                         vm=vm.name, datastores=names))


def disk_placement(vm: VmInfo) -> HostCheck:
    """Every disk in the VM's own folder (the cutover copies that folder)."""
    outside = disks_outside_folder(vm)
    if not outside:
        return HostCheck("disk placement", True, f"all disks in [{vm.datastore}] {vm.folder}")
    listed = ", ".join(outside)
    return HostCheck(
        "disk placement", False, f"outside the VM's folder: {listed}",
        DiskMismatch(
            f"disks of VM {vm.name} are outside its folder [{vm.datastore}] {vm.folder}: "
            f"{listed}",
            hint="move them into the VM's folder (storage migration) first; vmigrate "
            "copies the VM's own folder",
            vm=vm.name, disks=outside))


__all__ = ["disk_datastores", "disk_placement"]
