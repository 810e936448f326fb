"""Lab: a disk added after one was removed never reuses (or truncates) the removed disk's files.

"Remove from virtual machine" on VMware keeps the disk's files in the VM folder
(only "delete files from datastore" removes them), so a later "Add hard disk"
must create a file under a name not in use there.  Only a real host shows its
own naming scheme (a guess: ``alice_2.vmdk`` when ``alice_1.vmdk`` exists; not
verified); what the lab keeps is the rule: existing files are never reused.
"""

from __future__ import annotations

import pytest

from tests.fsproof import sha
from tests.lab.lab_helpers import (
    MiB,
    wait_off,
    wait_writes,
)
from vmigrate_lib.control.lab import LabHost


@pytest.mark.parametrize("live", [False, True], ids=["off", "live"])
def test_add_after_remove_keeps_the_removed_disks_file(
    host_a: LabHost, alice_off: str, live: bool
) -> None:
    """Remove disk 2001 (the last key), add a disk: a new file; the old one keeps its bytes.

    Proves the detached disk's data survives (it was truncated to zeros before)
    and the VM still boots: the new disk (which may reuse key 2001, as VMware
    reuses device keys) does not inherit the removed disk's ack map, so the
    boot check does not look for the old disk's blocks on the new, empty one.
    """
    vm = alice_off
    if live:
        host_a.power_on(vm)
        host_a.wait_ready(vm, 30)
        wait_writes(host_a, vm, 200)
    vmdir = host_a.vm_dir(vm)
    host_a.remove_disk(vm, 2001)
    old = vmdir / "alice_1-flat.vmdk"
    before = sha(old)
    added = host_a.add_disk(vm, 8 * MiB)
    assert added.path != f"{vm}/alice_1-flat.vmdk"
    assert sha(old) == before  # the removed disk's data is intact
    if live:
        wait_writes(host_a, vm, 200)
        host_a.shutdown_guest(vm)
        wait_off(host_a, vm)
    host_a.power_on(vm)
    info = host_a.wait_ready(vm, 30)  # the boot check passes on every disk
    assert [d.path for d in info.disks][-1] == added.path
    assert sha(old) == before
