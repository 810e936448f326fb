"""Bob's .vmx and disk descriptors from Alice's (vmigrate_lib.control.vsphere.vmxfiles)."""

from __future__ import annotations

import pytest

from tests.vsphere import vsim
from vmigrate_lib.control.host import DiskInfo, PowerState, VmInfo
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.control.vsphere import vmxfiles
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
    out = vmxfiles.prepare("bob", alice(), files(), RENAMES)
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
    out = vmxfiles.prepare("bob", alice(), files(), RENAMES)
    text = out["bob.vmdk"].decode()
    assert 'RW 16384 VMFS "bob-flat.vmdk"' in text
    assert "changeTrackPath" not in text and "alice" not in text
    assert 'ddb.thinProvisioned = "1"' in text and text.startswith("# Disk DescriptorFile")
    assert 'RW 16384 VMFS "bob_1-flat.vmdk"' in out["bob_1.vmdk"].decode()


def test_same_name_keeps_names_rewrites_only_runtime() -> None:
    same = {k: k for k in RENAMES}
    out = vmxfiles.prepare("alice", alice(), files(), same)
    v = vmx_values(out["alice.vmx"])
    assert v["displayName"] == "alice" and v["scsi0:1.fileName"] == "alice_1.vmdk"
    assert v["ctkEnabled"] == "FALSE"
    assert 'VMFS "alice-flat.vmdk"' in out["alice.vmdk"].decode()


def test_crlf_and_missing_keys() -> None:
    vmx = b'.encoding = "UTF-8"\r\nscsi0:0.fileName = "alice.vmdk"\r\n# comment\r\n'
    out = vmxfiles.rewrite_vmx(vmx, "bob", RENAMES).decode()
    assert out == ('.encoding = "UTF-8"\r\nscsi0:0.fileName = "bob.vmdk"\r\n# comment\r\n'
                   'displayName = "bob"\r\nuuid.action = "keep"\r\n')


def test_vmx_under_another_name_becomes_bobs() -> None:
    f = files()
    f["old-name.vmx"] = f.pop("alice.vmx")
    out = vmxfiles.prepare("bob", alice(), f, RENAMES)
    assert "bob.vmx" in out and "old-name.vmx" not in out


def test_no_vmx_or_two_is_an_error() -> None:
    f = files()
    del f["alice.vmx"]
    with pytest.raises(HostApiError, match=r"no \.vmx in the folder of VM alice"):
        vmxfiles.prepare("bob", alice(), f, RENAMES)
    f["x.vmx"] = f["y.vmx"] = b""
    assert vmxfiles.vmx_file(alice(), {**f, "alice.vmx": b""}) == "alice.vmx"  # named after her
    with pytest.raises(HostApiError, match=r"more than one .vmx .*x.vmx, y.vmx"):
        vmxfiles.prepare("bob", alice(), f, RENAMES)


def test_descriptor_outside_the_folder_is_an_error_before_anything() -> None:
    f = files()
    del f["alice_1.vmdk"]
    with pytest.raises(HostApiError, match=r"Hard disk 2 \(\[ds1\] alice/alice_1.vmdk\)"):
        vmxfiles.prepare("bob", alice(), f, RENAMES)


def test_binary_vmdk_is_not_a_descriptor() -> None:
    assert vmxfiles.is_descriptor(b"# Disk DescriptorFile\nversion=1\n")
    assert not vmxfiles.is_descriptor(b"KDMV\x01\x00\x00\x00")
    assert not vmxfiles.is_descriptor(b"# Disk DescriptorFile" + bytes(70 * 1024))


def test_lab_and_default_hook_rename_only() -> None:
    f = {"alice.vmx.json": b"{}", "acks-2000.bin": b"\x01"}
    renames = {"alice.vmx.json": "bob.vmx.json", "acks-2000.bin": "acks-2000.bin"}
    out = LabHost.prepare_config_files(object.__new__(LabHost), "bob", alice(), f, renames)
    assert out == {"bob.vmx.json": b"{}", "acks-2000.bin": b"\x01"}


def test_disks_outside_the_vm_folder_are_named() -> None:
    """Preflight's disk-placement check: the cutover can only rebuild the VM's own folder."""
    vm = alice()
    assert vmxfiles.disks_outside_folder(vm) == []
    moved = DiskInfo(key=2001, label="Hard disk 2", datastore="ds2",
                     path="shared/alice_1-flat.vmdk", capacity=8 * MiB)
    other_folder = DiskInfo(key=2002, label="Hard disk 3", datastore="ds1",
                            path="archive/alice_2-flat.vmdk", capacity=8 * MiB)
    vm2 = VmInfo(name="alice", uuid="u", host="h", power=PowerState.OFF, datastore="ds1",
                 folder="alice", disks=(vm.disks[0], moved, other_folder))
    assert vmxfiles.disks_outside_folder(vm2) == [
        "Hard disk 2 ([ds2] shared/alice_1-flat.vmdk)",
        "Hard disk 3 ([ds1] archive/alice_2-flat.vmdk)",
    ]
