"""vim-cmd's real outputs (ESXi 8.0, 7.0 and older hosts) read into dataclasses.

Each fixture is a real output from a public source (``tests/fixtures/vimcmd/SOURCES.md``:
the Jenkins vSphere Cloud plugin's recordings of ESXi 7 and 8 hosts, Apache VCL's
vim-cmd module for older hosts).  No ESXi 6.7 output was found; what only a real
host shows is every output these sources do not hold (``get.config``,
``get.filelayout``, a question's choices), which the parser reads with the same
vmodl-text grammar the ``get.guest`` and fault fixtures show.  An output the parser
does not understand is an error naming the command, never a guess.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from vmigrate_lib.control.esxi import vimcmd
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.errors import VimCmdParseError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "vimcmd"


def fixture(name: str) -> str:
    return (FIX / name).read_text()


def test_every_fixture_has_a_source() -> None:
    """SOURCES.md names each fixture file (no uncited output)."""
    sources = (FIX / "SOURCES.md").read_text()
    for f in FIX.rglob("*.txt"):
        rel = str(f.relative_to(FIX))
        stem = rel.rsplit("-", 1)[0] if rel.startswith("pre-6.7/power.getstate") else rel
        assert stem in sources, f"{rel} has no line in SOURCES.md"


@pytest.mark.parametrize(("name", "want"), [
    ("8.0/getallvms-one.txt", [(1, "x8", "pve-esx", "x8/x8.vmx", "centos9_64Guest", "vmx-20")]),
    ("7.0/getallvms-one.txt", [(1, "x7", "pve-esx", "x7/x7.vmx", "solaris10Guest", "vmx-19")]),
    ("pre-6.7/getallvms-two.txt", [
        (496, "vm-ark-mcnc-9 (nonpersistent: vmwarewinxp-base234-v12)", "nfs-datastore",
         "vm-ark-mcnc-9_234-v12/vm-ark-mcnc-9_234-v12.vmx", "winXPProGuest", "vmx-04"),
        (512, "vm-ark-mcnc-10 (nonpersistent: vmwarelinux-centosbase1617-v1)", "nfs-datastore",
         "vm-ark-mcnc-10_1617-v1/vm-ark-mcnc-10_1617-v1.vmx", "otherLinuxGuest", "vmx-04")]),
    ("8.0/getallvms-none.txt", []),
])
def test_getallvms(name: str, want: list[tuple[object, ...]]) -> None:
    rows = vimcmd.parse_getallvms(fixture(name))
    assert [(r.vmid, r.name, r.datastore, r.vmx, r.guest, r.version) for r in rows] == want


@pytest.mark.parametrize(("name", "state"), [
    ("pre-6.7/power.getstate-on.txt", PowerState.ON),
    ("pre-6.7/power.getstate-off.txt", PowerState.OFF),
    ("pre-6.7/power.getstate-suspended.txt", PowerState.SUSPENDED),
])
def test_power_state(name: str, state: PowerState) -> None:
    assert vimcmd.parse_power_state(fixture(name), 7) is state


def test_snapshot_get_esxi8_and_7() -> None:
    """ESXi 8 pads the time, ESXi 7 does not; 'Desciption' is ESXi's own spelling."""
    (s8,) = vimcmd.parse_snapshots(fixture("8.0/snapshot.get-one.txt"), 1)
    assert (s8.id, s8.name, s8.description, s8.state, s8.level) == (
        1, "snap1", "Shapshot #1", "powered off", 0)
    assert s8.created == dt.datetime(2026, 10, 4, 18, 59, 44, tzinfo=dt.UTC).timestamp()
    (s7,) = vimcmd.parse_snapshots(fixture("7.0/snapshot.get-one.txt"), 1)
    assert s7.created == dt.datetime(2026, 10, 4, 19, 0, 52, tzinfo=dt.UTC).timestamp()


def test_snapshot_get_child_and_none() -> None:
    first, second = vimcmd.parse_snapshots(fixture("7.0/snapshot.get-two.txt"), 1)
    assert (first.id, first.parent, first.level) == (1, None, 0)
    assert (second.id, second.name, second.description, second.parent, second.level) == (
        2, "Corelinux running", "", 1, 1)
    assert vimcmd.parse_snapshots(fixture("pre-6.7/snapshot.get-none.txt"), 1) == []


def test_snapshot_without_id_is_refused_not_guessed() -> None:
    """Hosts before 6.x print no 'Snapshot Id': refused with the command named."""
    with pytest.raises(VimCmdParseError, match=r"vim-cmd vmsvc/snapshot.get 4: .*no Id line"):
        vimcmd.parse_snapshots(fixture("pre-6.7/snapshot.get-no-id.txt"), 4)


@pytest.mark.parametrize("name", ["8.0/get.guest-no-tools.txt", "7.0/get.guest-no-tools.txt"])
def test_get_guest_vmodl(name: str) -> None:
    g = vimcmd.parse_vmodl("vim-cmd vmsvc/get.guest 1", fixture(name), "Guest information:")
    assert g.type == "vim.vm.GuestInfo"
    assert g.get("toolsRunningStatus") == "guestToolsNotRunning"
    assert g.get("ipAddress") is None and g.get("toolsVersion") == "0"


def test_get_guest_nested_objects() -> None:
    g = vimcmd.parse_vmodl("c", fixture("8.0/get.guest-no-tools.txt"), "Guest information:")
    assert g.get("screen").fields == {"width": 1024, "height": 768}
    assert g.get("customizationInfo").get("customizationStatus") == "TOOLSDEPLOYPKG_IDLE"
    assert "toolsUpdateStatus" in g.fields and g.get("toolsUpdateStatus") is None


@pytest.mark.parametrize(("name", "fault", "msg"), [
    ("8.0/fault-notfound.txt", "NotFound", 'Unable to find a VM corresponding to "1"'),
    ("pre-6.7/registervm-notfound.txt", "NotFound",
     "The object or item referred to could not be found."),
    ("pre-6.7/power.off-already-off.txt", "InvalidPowerState",
     "The attempted operation cannot be performed in the current state (Powered Off)."),
])
def test_faults(name: str, fault: str, msg: str) -> None:
    f = vimcmd.find_fault("c", fixture(name))
    assert f is not None and (f.name, f.msg) == (fault, msg)


def test_answers_hold_no_fault() -> None:
    for name in ("pre-6.7/power.on.txt", "pre-6.7/power.getstate-on.txt",
                 "8.0/getallvms-one.txt", "8.0/get.guest-no-tools.txt"):
        assert vimcmd.find_fault("c", fixture(name)) is None, name


@pytest.mark.parametrize(("reader", "text"), [
    (lambda t: vimcmd.parse_getallvms(t), "Failed to get VMs\n"),
    (lambda t: vimcmd.parse_getallvms(t), fixture("8.0/getallvms-none.txt") + "garbage\n"),
    (lambda t: vimcmd.parse_power_state(t, 3), "Retrieved runtime info\nPowered sideways\n"),
    (lambda t: vimcmd.parse_snapshots(t, 3), "Snapshots:\n"),
    (lambda t: vimcmd.parse_vmodl("vim-cmd vmsvc/get.guest 3", t, "Guest information:"),
     fixture("8.0/get.guest-no-tools.txt").replace('"running"', "running")),
    (lambda t: vimcmd.parse_registered_id(t, "/x.vmx"), "Registered as 12\n"),
])
def test_unknown_output_is_an_error_naming_the_command(reader: object, text: str) -> None:
    with pytest.raises(VimCmdParseError) as info:
        reader(text)  # type: ignore[operator]
    assert "cannot read the output of vim-cmd " in info.value.message
    assert info.value.fields["excerpt"]


def test_registered_id() -> None:
    assert vimcmd.parse_registered_id("104\n", "/v/x.vmx") == 104
    assert vimcmd.parse_registered_id("", "/v/x.vmx") is None


def test_several_objects_and_questions() -> None:
    """get.filelayout prints a FileInfo and a FileLayout (Apache VCL reads both); a header
    line may precede each.  ``vmsvc/message``: 'No message.' or 'Virtual machine message
    <id>:' (Apache VCL and the scripts in SOURCES.md match exactly these)."""
    text = ("VM files:\n(vim.vm.FileInfo) {\n   vmPathName = \"[ds] a/a.vmx\",\n}\n"
            "(vim.vm.FileLayout) {\n   disk = (vim.vm.FileLayout.DiskLayout) [\n"
            "      (vim.vm.FileLayout.DiskLayout) {\n         key = 2000,\n"
            "         diskFile = (string) [\n            \"[ds] a/a.vmdk\",\n"
            "            \"[ds] a/a-000001.vmdk\"\n         ],\n      }\n   ],\n}\n")
    info, layout = vimcmd.parse_vmodl_objects("c", text)
    assert info.get("vmPathName") == "[ds] a/a.vmx"
    assert layout.get("disk")[0].get("diskFile") == ["[ds] a/a.vmdk", "[ds] a/a-000001.vmdk"]
    with pytest.raises(VimCmdParseError, match="expected a"):
        vimcmd.parse_vmodl_objects("c", text + "stray words\n")
    assert vimcmd.parse_message("No message.\n", 3) is None
    q = vimcmd.parse_message("Virtual machine message 0:\nThis virtual machine might have "
                             "been moved or copied.\n", 3)
    assert q is not None and q.id == "0" and "moved or copied" in q.text
    with pytest.raises(VimCmdParseError, match="vmsvc/message 3"):
        vimcmd.parse_message("Something else\n", 3)


def test_an_array_printed_alone() -> None:
    """``hostsvc/autostartmanager/get_autostartseq`` prints one array of AutoPowerInfo, or
    ``(vim.host.AutoStartManager.AutoPowerInfo) []`` when empty (the shapes the Ansible
    module veksh/ansible-esxi library/esxi_autostart.py reads; no raw output was found,
    so these are written from that reader, in the grammar of the fixtures above; a field
    line ending in ", " is read too, since the parser strips each line)."""
    empty = "(vim.host.AutoStartManager.AutoPowerInfo) []\n"
    assert vimcmd.parse_vmodl_array("c", empty) == []
    two = ("(vim.host.AutoStartManager.AutoPowerInfo) [\n"
           "   (vim.host.AutoStartManager.AutoPowerInfo) {\n"
           "      key = 'vim.VirtualMachine:3', \n      startOrder = 1, \n"
           "      startAction = \"powerOn\", \n      stopAction = \"systemDefault\"\n   }, \n"
           "   (vim.host.AutoStartManager.AutoPowerInfo) {\n"
           "      key = 'vim.VirtualMachine:7',\n      startOrder = -1,\n"
           "      startAction = \"none\"\n   }\n]\n")
    first, second = vimcmd.parse_vmodl_array("c", two)
    assert (first.get("key"), first.get("startOrder"), first.get("startAction")) == (
        "vim.VirtualMachine:3", 1, "powerOn")
    assert (second.get("key"), second.get("startAction")) == ("vim.VirtualMachine:7", "none")
    with pytest.raises(VimCmdParseError, match="more output after the array"):
        vimcmd.parse_vmodl_array("c", empty + "stray\n")
    with pytest.raises(VimCmdParseError, match="expected"):
        vimcmd.parse_vmodl_array("c", "Autostart is off\n")
