"""Each disk's descriptor names the flat file vmigrate reads, or preflight refuses.

The control planes name a disk by its descriptor (``[ds] alice/alice.vmdk``); vmigrate reads
``alice-flat.vmdk`` beside it, the name ESXi gives a flat extent (Broadcom KB 311009). The
descriptor's extent line is what says so (VMware Virtual Disk Format 5.0: ``RW <sectors>
VMFS "<file>"``; QEMU block/vmdk.c ``vmdk_parse_extents`` reads ``ACCESS SECTORS TYPE "FILE"
[OFFSET]``). The descriptors below are written as ESXi writes them (tests/vsphere/vsim.py
``esxi_descriptor``, from that format): a disk renamed by hand
(``mv`` of the flat file and an edited descriptor: the extent names the old file), a raw
device mapping (``createType="vmfsPassthroughRawDeviceMap"``, a ``-rdmp.vmdk`` extent), an
extent of another size, a ``.vmdk`` that is not text. Real lab VMs, the real CLI: exit 2,
one line, nothing changed anywhere (tests/engine/refusals.py).

What only a real ESXi host shows: its own descriptors' every variant (ddb lines,
``changeTrackPath``, sesparse bases on vSAN), which this parser reads only for the
createType and the extent lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.refusals import run_and_check_unchanged
from tests.vsphere.vsim import esxi_descriptor
from vmigrate_lib.control.vmdkdesc import flat_problem, parse_descriptor

MiB = 1 << 20


def test_the_parser_reads_what_esxi_writes() -> None:
    desc = parse_descriptor(esxi_descriptor("alice-flat.vmdk", 8 * MiB))
    assert desc.create_type == "vmfs" and len(desc.extents) == 1
    ext = desc.extents[0]
    assert (ext.access, ext.sectors, ext.kind, ext.filename) == ("RW", 16384, "VMFS",
                                                                  "alice-flat.vmdk")
    assert flat_problem(desc, "alice-flat.vmdk", 8 * MiB) is None
    # a hosted product's monolithicFlat: FLAT extents carry an offset (QEMU requires it)
    flat = parse_descriptor(esxi_descriptor("a-flat.vmdk", MiB, create_type="monolithicFlat", kind="FLAT")
                            .replace('"a-flat.vmdk"', '"a-flat.vmdk" 0'))
    assert flat.extents[0].offset == 0 and flat_problem(flat, "a-flat.vmdk", MiB) is None
    two = parse_descriptor(esxi_descriptor("a-f001.vmdk", MiB).replace(
        'RW 2048 VMFS "a-f001.vmdk"', 'RW 2048 VMFS "a-f001.vmdk"\nRW 2048 VMFS "a-f002.vmdk"'))
    assert flat_problem(two, "a-flat.vmdk", 2 * MiB) == "2 extent lines, not one"


@pytest.fixture
def lab(make_lab: Any) -> Any:
    return make_lab(disk_sizes=(8 * MiB,), power_on=False)


def test_a_descriptor_that_names_the_flat_file_passes(lab: Any) -> None:
    (lab.ds_dir("esx-a") / "alice" / "alice.vmdk").write_text(
        esxi_descriptor("alice-flat.vmdk", 8 * MiB))
    r = lab.cli("preflight", "-p", str(lab.write_params()))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "disk 2000 descriptor: one extent, alice-flat.vmdk, whole" in r.stdout, r.stdout


def test_no_descriptor_is_said_and_read_as_named(lab: Any) -> None:
    """vmigrate's lab keeps no base descriptor until a snapshot; a real host always has one."""
    r = lab.cli("preflight", "-p", str(lab.write_params()))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no alice.vmdk: reading alice/alice-flat.vmdk as named" in r.stdout, r.stdout


@pytest.mark.parametrize("text, words", [
    (esxi_descriptor("web01-flat.vmdk", 8 * MiB),
     "its extent is 'web01-flat.vmdk', not 'alice-flat.vmdk'"),
    (esxi_descriptor("alice-rdmp.vmdk", 8 * MiB, create_type="vmfsPassthroughRawDeviceMap",
                     kind="VMFSRDM"), "a raw device mapping"),
    (esxi_descriptor("alice-flat.vmdk", 4 * MiB),
     f"its extent has 8192 sectors (4194304 bytes), the VM's disk {8 * MiB} bytes"),
    (esxi_descriptor("alice-000001-sesparse.vmdk", 8 * MiB, create_type="seSparse",
                     kind="SESPARSE"),
     "createType 'seSparse', not a flat disk"),
])
def test_a_descriptor_naming_other_bytes_is_refused(lab: Any, text: str, words: str) -> None:
    """Before: vmigrate read alice-flat.vmdk whatever the descriptor said; with a disk
    renamed by hand that copies a stale file (or none), with an RDM a file that is not the
    disk's data."""
    (lab.ds_dir("esx-a") / "alice" / "alice.vmdk").write_text(text)
    line = run_and_check_unchanged(lab, "sync", "-p", str(lab.write_params()))
    assert words in line and "vmkfstools -E" in line, line


def test_a_vmdk_that_is_not_text_is_refused_and_not_read_whole(lab: Any, tmp_path: Path) -> None:
    """A monolithic sparse disk (magic KDMV) where a descriptor was expected: its size is
    said, and preflight's peek does not read it (PEEK_LIMIT)."""
    big = lab.ds_dir("esx-a") / "alice" / "alice.vmdk"
    big.write_bytes(b"KDMV" + bytes(MiB))
    line = run_and_check_unchanged(lab, "sync", "-p", str(lab.write_params()))
    assert f"{MiB + 4} bytes, not a text descriptor" in line, line
