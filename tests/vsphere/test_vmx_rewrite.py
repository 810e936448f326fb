"""Bob's .vmx and disk descriptors from Alice's (vmigrate_lib.control.vmxtext)."""

from __future__ import annotations

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control import vmxtext
from vmigrate_lib.control.host import DiskInfo, PowerState, VmInfo
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import HostApiError

MiB = 1 << 20


def alice(disks: int = 2, folder: str = "alice") -> VmInfo:
    return VmInfo(
        name="alice", uuid="u", host="h", power=PowerState.OFF, datastore="ds1", folder=folder,
        disks=tuple(DiskInfo(key=2000 + i, label=f"Hard disk {i + 1}", datastore="ds1",
                             path=f"alice/alice{'' if i == 0 else f'_{i}'}-flat.vmdk",
                             capacity=8 * MiB) for i in range(disks)))


RENAMES = {"alice-flat.vmdk": "bob-flat.vmdk", "alice_1-flat.vmdk": "bob_1-flat.vmdk",
           "alice.vmx": "bob.vmx", "alice.nvram": "bob.nvram", "alice.vmxf": "bob.vmxf",
           "alice.vmdk": "bob.vmdk", "alice_1.vmdk": "bob_1.vmdk"}


def files() -> dict[str, bytes]:
    return {
        "alice.vmx": vsim.esxi_vmx("alice", disks=2).encode(),
        "alice.nvram": b"\x00NVRAM\xff",
        "alice.vmxf": b"<Foundry/>",
        "alice.vmdk": vsim.esxi_descriptor("alice-flat.vmdk", 8 * MiB, "alice-ctk.vmdk").encode(),
        "alice_1.vmdk": vsim.esxi_descriptor("alice_1-flat.vmdk", 8 * MiB).encode(),
    }


def vmx_values(data: bytes) -> dict[str, str]:
    out = {}
    for line in data.decode().splitlines():
        k, _, v = line.partition(" = ")
        out[k] = v.strip('"')
    return out


def test_vmx_names_bobs_files_and_drops_alices_runtime() -> None:
    out = vmxtext.prepare("bob", alice(), files(), RENAMES)
    assert sorted(out) == ["bob.nvram", "bob.vmdk", "bob.vmx", "bob.vmxf", "bob_1.vmdk"]
    v = vmx_values(out["bob.vmx"])
    assert v["displayName"] == "bob"
    assert v["nvram"] == "bob.nvram" and v["extendedConfigFile"] == "bob.vmxf"
    assert v["scsi0:0.fileName"] == "bob.vmdk"
    assert v["scsi0:1.fileName"] == "bob_1.vmdk"  # was /vmfs/volumes/<uuid>/alice/alice_1.vmdk
    assert v["ctkEnabled"] == "FALSE" and v["scsi0:0.ctkEnabled"] == "FALSE"
    assert v["uuid.action"] == "keep"
    assert "sched.swap.derivedName" not in v
    # everything else is kept as it was, in order
    assert v["uuid.bios"] == "56 4d 9d 00 00 01 00 00-00 00 00 00 00 00 00 01"
    assert v["ethernet0.generatedAddress"] == "00:0c:29:9d:00:01"
    assert v["ethernet0.networkName"] == "VM Network"
    assert out["bob.vmx"].decode().splitlines()[0] == '.encoding = "UTF-8"'
    assert out["bob.nvram"] == b"\x00NVRAM\xff" and out["bob.vmxf"] == b"<Foundry/>"


def test_descriptor_points_at_bobs_flat_without_change_tracking() -> None:
    out = vmxtext.prepare("bob", alice(), files(), RENAMES)
    text = out["bob.vmdk"].decode()
    assert 'RW 16384 VMFS "bob-flat.vmdk"' in text
    assert "changeTrackPath" not in text and "alice" not in text
    assert 'ddb.thinProvisioned = "1"' in text and text.startswith("# Disk DescriptorFile")
    assert 'RW 16384 VMFS "bob_1-flat.vmdk"' in out["bob_1.vmdk"].decode()


def test_same_name_keeps_names_rewrites_only_runtime() -> None:
    same = {k: k for k in RENAMES}
    out = vmxtext.prepare("alice", alice(), files(), same)
    v = vmx_values(out["alice.vmx"])
    assert v["displayName"] == "alice" and v["scsi0:1.fileName"] == "alice_1.vmdk"
    assert v["ctkEnabled"] == "FALSE"
    assert 'VMFS "alice-flat.vmdk"' in out["alice.vmdk"].decode()


def test_crlf_and_missing_keys() -> None:
    vmx = b'.encoding = "UTF-8"\r\nscsi0:0.fileName = "alice.vmdk"\r\n# comment\r\n'
    out = vmxtext.rewrite_vmx(vmx, "bob", RENAMES).decode()
    assert out == ('.encoding = "UTF-8"\r\nscsi0:0.fileName = "bob.vmdk"\r\n# comment\r\n'
                   'displayName = "bob"\r\nuuid.action = "keep"\r\n')


def test_vmx_under_another_name_becomes_bobs() -> None:
    f = files()
    f["old-name.vmx"] = f.pop("alice.vmx")
    out = vmxtext.prepare("bob", alice(), f, RENAMES)
    assert "bob.vmx" in out and "old-name.vmx" not in out


def test_no_vmx_or_two_is_an_error() -> None:
    f = files()
    del f["alice.vmx"]
    with pytest.raises(HostApiError, match=r"no \.vmx in the folder of VM alice"):
        vmxtext.prepare("bob", alice(), f, RENAMES)
    f["x.vmx"] = f["y.vmx"] = b""
    assert vmxtext.vmx_file(alice(), {**f, "alice.vmx": b""}) == "alice.vmx"  # named after her
    with pytest.raises(HostApiError, match=r"more than one .vmx .*x.vmx, y.vmx"):
        vmxtext.prepare("bob", alice(), f, RENAMES)


def test_descriptor_outside_the_folder_is_an_error_before_anything() -> None:
    f = files()
    del f["alice_1.vmdk"]
    with pytest.raises(HostApiError, match=r"Hard disk 2 \(\[ds1\] alice/alice_1.vmdk\)"):
        vmxtext.prepare("bob", alice(), f, RENAMES)


def test_binary_vmdk_is_not_a_descriptor() -> None:
    assert vmxtext.is_descriptor(b"# Disk DescriptorFile\nversion=1\n")
    assert not vmxtext.is_descriptor(b"KDMV\x01\x00\x00\x00")
    assert not vmxtext.is_descriptor(b"# Disk DescriptorFile" + bytes(70 * 1024))


def test_lab_and_default_hook_rename_only() -> None:
    f = {"alice.vmx.json": b"{}", "acks-2000.bin": b"\x01"}
    renames = {"alice.vmx.json": "bob.vmx.json", "acks-2000.bin": "acks-2000.bin"}
    out = LabHost.prepare_config_files(object.__new__(LabHost), "bob", alice(), f, renames)
    assert out == {"bob.vmx.json": b"{}", "acks-2000.bin": b"\x01"}


def test_disks_outside_the_vm_folder_are_named() -> None:
    """Preflight's disk-placement check: the cutover can only rebuild the VM's own folder."""
    vm = alice()
    assert vmxtext.disks_outside_folder(vm) == []
    moved = DiskInfo(key=2001, label="Hard disk 2", datastore="ds2",
                     path="shared/alice_1-flat.vmdk", capacity=8 * MiB)
    other_folder = DiskInfo(key=2002, label="Hard disk 3", datastore="ds1",
                            path="archive/alice_2-flat.vmdk", capacity=8 * MiB)
    vm2 = VmInfo(name="alice", uuid="u", host="h", power=PowerState.OFF, datastore="ds1",
                 folder="alice", disks=(vm.disks[0], moved, other_folder))
    assert vmxtext.disks_outside_folder(vm2) == [
        "Hard disk 2 ([ds2] shared/alice_1-flat.vmdk)",
        "Hard disk 3 ([ds1] archive/alice_2-flat.vmdk)",
    ]


# --- files Bob cannot reach on the destination (issue 11 item 6, real-esxi notes F10) -----------

A_UUID = "5f0c1d2e-aaaa0000-beef-0050569d0001"  # Alice's datastore as ESXi writes it in a .vmx
B_VOLUMES = ("ds2", "5f0c1d2e-bbbb0000-beef-0050569d0002", "iso-share", "swapds")


def vmx_with(*lines: str) -> dict[str, bytes]:
    f = files()
    f["alice.vmx"] = (f["alice.vmx"].decode() + "\n".join(lines) + "\n").encode()
    return f


def test_isos_bob_cannot_reach_do_not_connect_at_power_on() -> None:
    """A CD/DVD image that is not in Bob's folder and not on a datastore B mounts is kept
    by name but set not to connect at power-on, with a note for the journal; images B can
    open stay connected.  Before: every ide/sata fileName passed through unchanged
    (real-esxi notes Probe 2).  What ESXi does at power-on with a missing connected image
    (fail, or ask) only a real host shows: this proves Bob's .vmx no longer asks for it."""
    f = vmx_with(
        'ide1:0.present = "TRUE"', 'ide1:0.deviceType = "cdrom-image"',
        'ide1:0.startConnected = "TRUE"', 'ide1:0.fileName = "install.iso"',  # skipped (> 64 MiB)
        'sata0:0.present = "TRUE"', 'sata0:0.deviceType = "cdrom-image"',
        f'sata0:0.fileName = "/vmfs/volumes/{A_UUID}/iso/tools.iso"',  # A's datastore only
        'sata0:1.present = "TRUE"', 'sata0:1.deviceType = "cdrom-image"',
        'sata0:1.fileName = "/vmfs/volumes/iso-share/linux.iso"',  # shared: B mounts it
        'sata0:2.present = "TRUE"', 'sata0:2.deviceType = "cdrom-image"',
        'sata0:2.fileName = "small.iso"',  # copied with the folder
        'sata0:3.present = "TRUE"', 'sata0:3.deviceType = "cdrom-image"',
        'sata0:3.fileName = "/usr/lib/vmware/isoimages/linux.iso"',  # every ESXi host has it
        'floppy0.present = "TRUE"', 'floppy0.fileType = "file"',
        f'floppy0.fileName = "/vmfs/volumes/{A_UUID}/alice/drivers.flp"')
    f["small.iso"] = b"\x00" * 2048
    notes: list[str] = []
    out = vmxtext.prepare("bob", alice(), f, {**RENAMES, "small.iso": "small.iso"},
                           dest_volumes=B_VOLUMES, notes=notes)
    text = out["bob.vmx"].decode()
    v = vmx_values(out["bob.vmx"])
    assert v["ide1:0.fileName"] == "install.iso" and v["ide1:0.startConnected"] == "FALSE"
    assert text.count("ide1:0.startConnected") == 1  # replaced, not a second key
    assert v["sata0:0.startConnected"] == "FALSE"
    assert v["floppy0.startConnected"] == "FALSE"
    for dev in ("sata0:1", "sata0:2", "sata0:3"):
        assert f"{dev}.startConnected" not in v, dev
    assert v["sata0:1.fileName"] == "/vmfs/volumes/iso-share/linux.iso"
    assert v["sata0:2.fileName"] == "small.iso" and out["small.iso"] == f["small.iso"]
    assert len(notes) == 3
    assert any("ide1:0 (CD/DVD) image install.iso is not on the destination" in n for n in notes)
    assert any(f"sata0:0 (CD/DVD) image /vmfs/volumes/{A_UUID}/iso/tools.iso" in n for n in notes)
    assert any("floppy0 (floppy) image" in n for n in notes)


def test_working_dir_and_swap_dir_never_point_at_alice() -> None:
    """``workingDir`` and ``sched.swap.dir`` naming Alice's folder or a datastore B does
    not mount are dropped (ESXi then uses the VM's own folder for snapshots and swap);
    a swap datastore B mounts is kept.  Before: both passed through, so Bob would write
    his snapshot deltas and swap into Alice's folder or fail to find the datastore."""
    f = vmx_with(f'workingDir = "/vmfs/volumes/{A_UUID}/alice/"',
                 'sched.swap.dir = "/vmfs/volumes/swapds/swap/"')
    notes: list[str] = []
    v = vmx_values(vmxtext.prepare("bob", alice(), f, RENAMES, dest_volumes=B_VOLUMES,
                                    notes=notes)["bob.vmx"])
    assert "workingDir" not in v
    assert v["sched.swap.dir"] == "/vmfs/volumes/swapds/swap/"
    assert notes == [f"workingdir = /vmfs/volumes/{A_UUID}/alice/ named the source VM's folder: "
                     "dropped, so Bob's own folder is used"]
    f = vmx_with(f'sched.swap.dir = "/vmfs/volumes/{A_UUID}/swap/"')
    notes.clear()
    v = vmx_values(vmxtext.prepare("bob", alice(), f, RENAMES, dest_volumes=B_VOLUMES,
                                    notes=notes)["bob.vmx"])
    assert "sched.swap.dir" not in v
    assert notes and "does not mount" in notes[0]


def test_other_paths_into_alices_folder_name_bobs() -> None:
    """Any other absolute ``/vmfs/volumes`` value into Alice's folder (a serial port's
    output file) names the same file in Bob's folder; one on a datastore B lacks is
    dropped with a note; host paths are kept.  Before: they passed through unchanged."""
    f = vmx_with('serial0.present = "TRUE"', 'serial0.fileType = "file"',
                 f'serial0.fileName = "/vmfs/volumes/{A_UUID}/alice/serial0.log"',
                 f'serial1.fileName = "/vmfs/volumes/{A_UUID}/logs/alice-serial1.log"',
                 'parallel0.fileName = "/dev/null"')
    notes: list[str] = []
    v = vmx_values(vmxtext.prepare("bob", alice(), f, RENAMES, dest_volumes=B_VOLUMES,
                                    notes=notes)["bob.vmx"])
    assert v["serial0.fileName"] == "serial0.log"
    assert "serial1.fileName" not in v
    assert v["parallel0.fileName"] == "/dev/null"
    assert v["scsi0:1.fileName"] == "bob_1.vmdk"  # the disk rename is unchanged
    assert len(notes) == 2


def test_unknown_destination_volumes_count_only_what_was_copied() -> None:
    """Without the destination's datastore list (a direct call), a path on any datastore
    counts as unreachable: the conservative choice."""
    f = vmx_with('ide1:0.deviceType = "cdrom-image"',
                 'ide1:0.fileName = "/vmfs/volumes/iso-share/linux.iso"')
    v = vmx_values(vmxtext.prepare("bob", alice(), f, RENAMES)["bob.vmx"])
    assert v["ide1:0.startConnected"] == "FALSE"


def test_destination_host_reads_its_datastores_and_notes_what_it_changed(
        vcsim: vcsim_peer.VcsimInfo) -> None:
    """VsphereHost.prepare_config_files asks the destination host (the simulator) which
    datastores it mounts, by name and by the volume id at the end of summary.url (on ESXi
    ``ds:///vmfs/volumes/<uuid>/``), and hands the changes out once through take_notes
    for the cutover's journal.  Only a real host shows its own UUID-style urls."""
    f = vmx_with('ide1:0.deviceType = "cdrom-image"',
                 'ide1:0.fileName = "/vmfs/volumes/LocalDS_0/iso/linux.iso"',
                 'sata0:0.deviceType = "cdrom-image"',
                 f'sata0:0.fileName = "/vmfs/volumes/{A_UUID}/iso/tools.iso"')
    with VsphereHost(vsim.host_params(vcsim)) as host:
        out = host.prepare_config_files("bob", alice(), f, RENAMES)
        v = vmx_values(out["bob.vmx"])
        assert "ide1:0.startConnected" not in v  # LocalDS_0 is mounted on this host
        assert v["sata0:0.startConnected"] == "FALSE"
        notes = host.take_notes()
        assert len(notes) == 1 and "sata0:0 (CD/DVD)" in notes[0]
        assert host.take_notes() == []
