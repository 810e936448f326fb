"""EsxiHost drives a lab host served as ESXi: vim-cmd over a real sshd, busybox shell.

Proves, against real parts (sshd in a network namespace, busybox ``ash`` as the login
shell, the lab's real snapshots and guest processes): inventory from ``getallvms`` +
``get.config`` + ``get.guest``, snapshots created without memory, read back and
removed, power on/off, unregister and register again, datastores under
``/vmfs/volumes``, a disk made with ``vmkfstools``, and the agent reading a disk over
the same SSH connection.  The peer prints what ESXi prints (fixture layouts, sources in
tests/fixtures/vimcmd/SOURCES.md); ``get.config``'s exact text, vim-cmd's exit codes on
faults and the licence exemption of vim-cmd's local session are what only a real ESXi
host shows.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.esxi.conftest import EsxiLab, MiB
from vmigrate_lib.control.host import HostCheck, PowerState
from vmigrate_lib.errors import DiskChainError, DiskMismatch, PowerError, PowerOnQuestion


def test_inventory_power_and_snapshots(esxi_lab: EsxiLab) -> None:
    with esxi_lab.host() as h:
        assert h.vm_exists("alice") and not h.vm_exists("bob")
        vm = h.find_vm("alice")
        assert vm.power == PowerState.OFF and vm.datastore == "datastore1"
        assert vm.folder == "alice" and [d.path for d in vm.disks] == ["alice/alice-flat.vmdk"]
        assert vm.disks[0].capacity == 8 * MiB and not vm.disks[0].cbt_enabled
        assert vm.uuid == esxi_lab.lab.host().find_vm("alice").uuid

        h.power_on("alice")
        assert h.power_state("alice") == PowerState.ON
        assert esxi_lab.lab.host().power_state("alice") == PowerState.ON
        snap = h.create_snapshot("alice", "vmigrate-t1", "cycle 1")
        assert (snap.name, snap.description) == ("vmigrate-t1", "cycle 1")
        assert snap.disk_paths == {2000: "alice/alice-flat.vmdk"}
        assert [s.name for s in esxi_lab.lab.host().list_snapshots("alice")] == ["vmigrate-t1"]
        assert [(s.id, s.name) for s in h.list_snapshots("alice")] == [(snap.id, "vmigrate-t1")]
        h.remove_snapshot("alice", snap.id)
        h.remove_snapshot("alice", snap.id)  # already gone: done (a re-run)
        assert h.list_snapshots("alice") == [] == esxi_lab.lab.host().list_snapshots("alice")
        h.power_off("alice")
        h.power_off("alice")  # already off: nothing to do
        assert esxi_lab.lab.host().power_state("alice") == PowerState.OFF
    calls = [c[1] for c in esxi_lab.peer.calls() if c[0] == "vim-cmd"]
    assert calls.count("vmsvc/snapshot.create") == 1 and calls.count("vmsvc/power.on") == 1
    create = next(c for c in esxi_lab.peer.calls() if c[1:2] == ["vmsvc/snapshot.create"])
    assert create[3:] == ["vmigrate-t1", "cycle 1", "0", "0"]  # no memory, no quiesce


def test_unregister_register_datastores_and_disks(esxi_lab: EsxiLab) -> None:
    with esxi_lab.host() as h:
        assert h.datastores() == ["datastore1"]  # the VMFS UUID entry is not a name
        vm = h.find_vm("alice")
        h.unregister_vm("alice")
        assert not h.vm_exists("alice") and not esxi_lab.lab.host().vm_exists("alice")
        back = h.register_vm("alice", "datastore1", "alice", vm)
        assert back.uuid == vm.uuid and h.vm_exists("alice")
        assert h.register_vm("alice", "datastore1", "alice", vm).uuid == vm.uuid  # re-run
        flat = h.create_disk("datastore1", "alice/extra.vmdk", 4 * MiB, "thin")
        path = esxi_lab.lab.ds_dir("esx-a") / flat
        assert flat == "alice/extra-flat.vmdk" and path.stat().st_size == 4 * MiB
        assert (path.parent / "extra.vmdk").read_text().count('RW 8192 VMFS "extra-flat.vmdk"')
        want = (esxi_lab.lab.ds_dir("esx-a") / "alice" / "alice-flat.vmdk").read_bytes()
        with h.open_datastore("datastore1") as ds:  # the agent, on the same SSH connection
            st = ds.stat("alice/alice-flat.vmdk")
            got = bytearray(8 * MiB)
            for c in ds.read_extents("alice/alice-flat.vmdk",
                                     ds.allocated("alice/alice-flat.vmdk")):
                got[c.offset:c.offset + c.length] = c.data or bytes(c.length)
        assert st is not None and st.size == 8 * MiB
        assert bytes(got) == want and any(want)


def chain_line(lines: list[HostCheck]) -> HostCheck:
    (line,) = [c for c in lines if c.name == "disk chain"]
    return line


def test_disks_outside_the_vm_folder_are_refused(esxi_lab: EsxiLab) -> None:
    """A second disk created on another datastore is ``[ds2] alice/alice.vmdk`` (vSphere
    names a VM's files after it, in a folder of its name, on whichever datastore holds them:
    control/placement.py), the first disk's own name: both would be copied into one file
    on the destination, each cycle overwriting the other.  Before: the esxi host type did
    not check (only vSphere's did).  The peer's Alice is real; the second disk is given to
    the check as ``get.config`` would list it (the peer's lab keeps one datastore)."""
    with esxi_lab.host() as h:
        vm = h.find_vm("alice")
        lines = {c.name: c for c in h.migration_checks(vm)}
        assert lines["disk datastores"].ok and lines["disk placement"].ok, lines
        other = replace(vm.disks[0], key=2001, datastore="datastore2")
        two = replace(vm, disks=(*vm.disks, other))
        lines = {c.name: c for c in h.migration_checks(two)}
        assert not lines["disk datastores"].ok
        assert isinstance(lines["disk datastores"].error, DiskMismatch)
        assert "datastore1, datastore2" in lines["disk datastores"].detail
        assert not lines["disk placement"].ok
        assert [c.name for c in h.recheck(two) if not c.ok] == ["disk datastores",
                                                                 "disk placement"]


def test_autostart_is_read_with_vim_cmd(esxi_lab: EsxiLab) -> None:
    """``hostsvc/autostartmanager/get_autostartseq``: Alice starts with her host only with
    an entry whose startAction is powerOn (an entry set to ``none``, as ESXi's own UI and
    the Ansible module veksh/ansible-esxi disable one, does not).  Preflight's new-name
    identity line warns on it (engine/identity.py)."""
    with esxi_lab.host() as h:
        assert h.in_autostart("alice") is False  # the empty list
        esxi_lab.peer.override("autostart", "alice", {"startAction": "powerOn", "startOrder": 1})
        assert h.in_autostart("alice") is True
        esxi_lab.peer.override("autostart", "alice", {"startAction": "none", "startOrder": -1})
        assert h.in_autostart("alice") is False


def test_disk_chain_checks_and_a_question_at_power_on(esxi_lab: EsxiLab) -> None:
    """``get.filelayout``/``get.runtime`` feed the preflight's disk-chain line; a question
    (``vmsvc/message``) holding power-on is named, with how to answer it."""
    peer = esxi_lab.peer
    with esxi_lab.host() as h:
        vm = h.find_vm("alice")
        assert h.disk_chains("alice") == {2000: ["[datastore1] alice/alice.vmdk"]}
        line = chain_line(h.migration_checks(vm))
        assert (line.name, line.ok) == ("disk chain", True)
        snap = h.create_snapshot("alice", "vmigrate-x", "")
        assert h.disk_chains("alice")[2000][1:] == ["[datastore1] alice/alice-000001.vmdk"]
        assert chain_line(h.migration_checks(vm)).ok  # a snapshot's delta: the snapshot check
        h.remove_snapshot("alice", snap.id)
        peer.override("consolidationNeeded", "alice", True)
        line = chain_line(h.migration_checks(vm))
        assert not line.ok and isinstance(line.error, DiskChainError)
        assert "consolidation needed" in line.error.message

        peer.override("question", "alice", ["_vmx1", "This virtual machine might have been "
                                             "moved or copied."])
        with pytest.raises(PowerOnQuestion, match="might have been moved or copied") as info:
            h.power_on("alice")
        assert f"vim-cmd vmsvc/message {h.vmid('alice')} _vmx1 <choice>" in info.value.hint
        h.shell.vim_cmd("vmsvc/message", str(h.vmid("alice")), "_vmx1", "1")
        assert h.question("alice") is None
        h.power_on("alice")
        assert h.power_state("alice") == PowerState.ON
        h.power_off("alice")
        with pytest.raises(PowerError, match="InvalidPowerState"):  # the fault, mapped
            h.shutdown_guest("alice")
