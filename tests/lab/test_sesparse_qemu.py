"""QEMU reads the lab's snapshot chains (issue 12 item 4): SEsparse deltas with VMware
descriptors, as ESXi writes them on VMFS-6.

The independent reader is Debian's ``qemu-img`` (qemu-utils): QEMU's vmdk driver
(qemu/qemu ``block/vmdk.c``: ``vmdk_open_se_sparse``, ``get_cluster_offset``,
``vmdk_parent_open``, ``vmdk_is_cid_valid``) is the public reference for the
format, since VMware does not document it.  What only a real ESXi host would show:
that ESXi itself opens these files (its journal, free bitmap and back map regions
are placed by the lab's own guess, fields QEMU does not read), and the ESXi-side
consolidation.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fsproof import sha
from tests.lab.lab_helpers import delta_files, wait_writes
from vmigrate_lib.control.host import CBT_GRAIN
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.dataplane.agent.deltaformats import open_delta
from vmigrate_lib.errors import LabError
from vmigrate_lib.extents import from_blocks
from vmigrate_lib.lab.acks import ack_path
from vmigrate_lib.lab.machine import VmMachine
from vmigrate_lib.lab.sesparse import SeSparseFile, descriptor, new_cid
from vmigrate_lib.lab.verify import verify_copy

QEMU_IMG = shutil.which("qemu-img")
pytestmark = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not installed (qemu-utils)")
MiB = 1 << 20


def qemu_img(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert QEMU_IMG is not None
    return subprocess.run([QEMU_IMG, *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def qemu_raw(top: Path, out: Path) -> Path:
    """The chain under descriptor ``top`` as QEMU reads it, written as a raw image."""
    done = qemu_img("convert", "-f", "vmdk", "-O", "raw", top, out)
    assert done.returncode == 0, done.stderr
    return out


def lab_view(config: Path, key: int, out: Path) -> Path:
    """The guest's view of one disk as the lab itself reads it (VM off)."""
    machine = VmMachine.open(config)
    try:
        disk = next(d for d in machine.disks if d.key == key)
        out.write_bytes(disk.read(0, disk.capacity))
    finally:
        machine.close()
    return out


def test_qemu_reads_every_lab_chain_as_the_guest_acknowledged_it(
    host_a: LabHost, alice: str, tmp_path: Path
) -> None:
    """Three snapshot rounds on a writing guest: after each, QEMU's reading of
    ``alice-00000N.vmdk`` (SEsparse over ``alice.vmdk`` over the flat file) holds every
    block the guest acknowledged with its exact sequence number, equals byte for byte
    the lab's own view, and the base under it is the frozen flat file; removal
    consolidates into the base and leaves no delta.  Before the lab wrote SEsparse,
    there was no ``alice-000001.vmdk`` for QEMU to open."""
    vmdir = host_a.vm_dir(alice)
    config = vmdir / "alice.vmx.json"
    disks = {2000: "alice", 2001: "alice_1"}
    for round_ in range(1, 4):
        snap = host_a.create_snapshot(alice, f"vmigrate-{round_}")
        number = int(snap.id.rpartition("-")[2])
        frozen = {stem: sha(vmdir / f"{stem}-flat.vmdk") for stem in disks.values()}
        wait_writes(host_a, alice, 300)
        host_a.shutdown_guest(alice)
        assert host_a.wait_powered_off(alice, 30)
        for key, stem in disks.items():
            top = vmdir / f"{stem}-{number:06d}.vmdk"
            info = qemu_img("info", top)
            assert info.returncode == 0 and "create type: seSparse" in info.stdout, info
            raw = qemu_raw(top, tmp_path / f"{stem}-{round_}.raw")
            report = verify_copy(raw, ack_path(vmdir, key))
            assert report.ok and report.exact and report.acked > 0, report.problems()
            same = qemu_img("compare", "-f", "vmdk", "-F", "raw", top,
                            lab_view(config, key, tmp_path / f"{stem}-{round_}.lab"))
            assert same.returncode == 0, same.stdout + same.stderr
            base = qemu_img("compare", "-f", "vmdk", "-F", "raw", vmdir / f"{stem}.vmdk",
                            vmdir / f"{stem}-flat.vmdk")
            assert base.returncode == 0, base.stdout + base.stderr
            assert sha(vmdir / f"{stem}-flat.vmdk") == frozen[stem]
        host_a.power_on(alice)
        host_a.wait_ready(alice, 30)
        host_a.remove_snapshot(alice, snap.id)
        assert not delta_files(vmdir) and not delta_files(vmdir, "alice_1")


def _chain_write(delta: SeSparseFile, model: bytearray, frozen: bytes, rng: random.Random) -> None:
    off = rng.randrange(0, len(model) - 70000)
    data = rng.randbytes(rng.choice((1, 512, 4096, 5000, 65536)))
    if rng.random() < 0.2:
        data = bytes(len(data))  # zeros written by the guest are data too
    delta.write(off, data, lambda o, n: frozen[o : o + n])
    model[off : off + len(data)] = data


def test_qemu_reads_a_three_level_chain_written_by_the_lab_writer(tmp_path: Path) -> None:
    """base <- 000001 <- 000002 <- 000003, each delta written with random partial-grain
    writes over its frozen parent: QEMU's view at each level equals the model, and a
    child whose ``parentCID`` no longer matches its parent's ``CID`` is refused by QEMU
    (the descriptors carry the chain QEMU checks, not just file names).  Real ESXi
    keeps such chains for a VM with several snapshots; only the lab's writer is tested
    here, ESXi's own files are not."""
    cap = 40 * MiB
    rng = random.Random(12)
    flat = tmp_path / "d-flat.vmdk"
    model = bytearray(cap)
    with open(flat, "wb") as fh:
        for _ in range(30):
            off, data = rng.randrange(0, cap - 9000), rng.randbytes(9000)
            fh.seek(off)
            fh.write(data)
            model[off : off + 9000] = data
        fh.truncate(cap)
    cid = new_cid()
    (tmp_path / "d.vmdk").write_bytes(descriptor(cid=cid, parent_cid=0xFFFFFFFF,
                                                 create_type="vmfs", extent=flat.name,
                                                 capacity=cap))
    parent = "d.vmdk"
    for level in range(1, 4):
        frozen = bytes(model)
        child_cid = new_cid()
        top = tmp_path / f"d-{level:06d}.vmdk"
        top.write_bytes(descriptor(cid=child_cid, parent_cid=cid, create_type="seSparse",
                                   extent=f"d-{level:06d}-sesparse.vmdk", capacity=cap,
                                   parent_hint=parent))
        delta = SeSparseFile.create(tmp_path / f"d-{level:06d}-sesparse.vmdk", cap)
        for _ in range(150):
            _chain_write(delta, model, frozen, rng)
        delta.close()
        expect = tmp_path / f"expect-{level}.raw"
        expect.write_bytes(model)
        done = qemu_img("compare", "-f", "vmdk", "-F", "raw", top, expect)
        assert done.returncode == 0, done.stdout + done.stderr
        parent, cid = top.name, child_cid
    # break the chain: the top's parentCID no longer names its parent's content
    top = tmp_path / "d-000003.vmdk"
    text = top.read_text().splitlines()
    text = [f"parentCID={(int(line[10:], 16) ^ 1):08x}" if line.startswith("parentCID=") else line
            for line in text]
    top.write_text("\n".join(text) + "\n")
    broken = qemu_img("compare", "-f", "vmdk", "-F", "raw", top, tmp_path / "expect-3.raw")
    assert broken.returncode != 0


def test_a_crash_between_grain_data_and_table_entry_leaves_the_grain_unmapped(
    tmp_path: Path,
) -> None:
    """The writer's order (data, then grain-table entry) means a file cut after the data
    of a new grain reads, in QEMU, as the parent there: never an entry without data.
    Simulated by writing the grain and then zeroing its table entry on disk."""
    cap = 16 * MiB
    path = tmp_path / "x-sesparse.vmdk"
    delta = SeSparseFile.create(path, cap)
    delta.write(8192, b"\x07" * 4096, lambda o, n: bytes(n))
    delta.close()
    reopened = SeSparseFile.open(path)
    assert sorted(reopened.slots) == [2]
    reopened.close()
    # the entry of grain 2 lives in grain table 0 at index 2
    head = path.read_bytes()[:512]
    gts_at = int.from_bytes(head[18 * 8 : 19 * 8], "little") * 512
    with open(path, "r+b") as fh:
        fh.seek(gts_at + 8 * 2)
        fh.write(bytes(8))
    (tmp_path / "x-flat.vmdk").write_bytes(bytes(cap))
    (tmp_path / "x.vmdk").write_bytes(descriptor(cid=1, parent_cid=0xFFFFFFFF, create_type="vmfs",
                                                 extent="x-flat.vmdk", capacity=cap))
    (tmp_path / "x-000001.vmdk").write_bytes(descriptor(
        cid=2, parent_cid=1, create_type="seSparse", extent=path.name, capacity=cap,
        parent_hint="x.vmdk"))
    done = qemu_img("compare", "-f", "vmdk", "-F", "raw", tmp_path / "x-000001.vmdk",
                    tmp_path / "x-flat.vmdk")
    assert done.returncode == 0, done.stdout + done.stderr
    again = SeSparseFile.open(path)
    assert again.slots == {}
    again.write(0, b"\x01" * 4096, lambda o, n: bytes(n))  # the leaked slot is reused
    assert again.slots == {0: 0}
    again.close()


def test_a_live_snapshot_of_an_older_lab_is_refused_not_restarted(
    host_a: LabHost, alice_off: str
) -> None:
    """A snapshot taken by a lab version that wrote ``-delta.bin``/``-delta.map``: opening
    the VM refuses in one line naming the file, instead of starting an empty SEsparse
    delta over it (which would drop every write that delta held)."""
    vmdir = host_a.vm_dir(alice_off)
    host_a.create_snapshot(alice_off, "vmigrate-1")
    for path in delta_files(vmdir):
        path.unlink()
    (vmdir / "alice-delta.map").write_bytes(b"\x01\x00\x00\x00")
    with pytest.raises(LabError, match=r"alice-delta\.map is a snapshot delta of an older lab"):
        VmMachine.open(vmdir / "alice.vmx.json").close()
    assert not delta_files(vmdir)


def _grains64(path: Path) -> list[int]:
    with open_delta(str(path)) as delta:
        return sorted({g for off, n, _k in delta.extents()
                       for g in range(off // CBT_GRAIN, (off + n - 1) // CBT_GRAIN + 1)})


def test_a_chain_kept_between_snapshots_reads_in_qemu_and_consolidates(
    host_a: LabHost, alice: str, tmp_path: Path
) -> None:
    """The snapshot-delta mode's shape on a writing guest: three snapshots kept on top of
    each other (``keep_older``); each older delta, frozen by the next snapshot, holds
    exactly what change tracking reports between the two snapshots; removing the
    oldest merges its delta into the flat file while the guest writes the top and
    points the next delta at ``alice.vmdk``; QEMU reads the remaining chain with every
    acknowledged block exact; removing the rest leaves the flat file with them all.
    Before: a second snapshot was always refused ("one snapshot per VM")."""
    vmdir = host_a.vm_dir(alice)
    snaps = [host_a.create_snapshot(alice, "c1")]
    for name in ("c2", "c3"):
        wait_writes(host_a, alice, 200)
        older = snaps[-1]
        snaps.append(host_a.create_snapshot(alice, name, keep_older=True))
        # asked at once: a later write to the same grain moves its generation on
        tracked = list(host_a.query_changed_areas(alice, snaps[-1], 2000,
                                                  older.change_ids[2000]))
        frozen = _grains64(vmdir / f"alice-{int(older.id.rpartition('-')[2]):06d}-sesparse.vmdk")
        assert frozen and tracked == from_blocks(frozen, CBT_GRAIN, 16 * MiB)
    n1, n2, n3 = (int(s.id.rpartition("-")[2]) for s in snaps)
    wait_writes(host_a, alice, 200)
    host_a.remove_snapshot(alice, snaps[0].id)  # the oldest, while the guest writes the top
    assert not (vmdir / f"alice-{n1:06d}.vmdk").exists()
    assert 'parentFileNameHint="alice.vmdk"' in (vmdir / f"alice-{n2:06d}.vmdk").read_text()
    host_a.shutdown_guest(alice)
    assert host_a.wait_powered_off(alice, 30)
    raw = qemu_raw(vmdir / f"alice-{n3:06d}.vmdk", tmp_path / "top.raw")
    report = verify_copy(raw, ack_path(vmdir, 2000))
    assert report.ok and report.exact and report.acked > 0, report.problems()
    same = qemu_img("compare", "-f", "vmdk", "-F", "raw", vmdir / f"alice-{n3:06d}.vmdk",
                    lab_view(vmdir / "alice.vmx.json", 2000, tmp_path / "lab.raw"))
    assert same.returncode == 0, same.stdout + same.stderr
    host_a.remove_snapshot(alice, snaps[2].id)  # the top, into the delta below (VM off)
    raw = qemu_raw(vmdir / f"alice-{n2:06d}.vmdk", tmp_path / "two.raw")
    assert verify_copy(raw, ack_path(vmdir, 2000)).ok
    host_a.remove_snapshot(alice, snaps[1].id)
    assert not delta_files(vmdir) and host_a.list_snapshots(alice) == []
    flat = verify_copy(vmdir / "alice-flat.vmdk", ack_path(vmdir, 2000))
    assert flat.ok and flat.exact, flat.problems()


def test_removing_an_older_snapshot_resumes_after_a_crash(
    host_a: LabHost, alice_off: str, tmp_path: Path
) -> None:
    """A removal of the oldest of two snapshots cut after half its grains were merged into
    the flat file (state ``removing`` on disk, as a crash leaves it): opening the VM
    finishes it; the guest's view is what it was before the removal began, and QEMU
    reads the remaining chain as that view."""
    vmdir = host_a.vm_dir(alice_off)
    config = vmdir / "alice.vmx.json"
    rng = random.Random(5)
    m = VmMachine.open(config)
    try:
        s1 = m.create_snapshot("c1")
        disk = next(d for d in m.disks if d.key == 2000)
        for _ in range(60):
            disk.write(rng.randrange(0, 4000) * 4096, rng.randbytes(4096))
        m.create_snapshot("c2", keep_older=True)
        for _ in range(60):
            disk.write(rng.randrange(0, 4000) * 4096, rng.randbytes(4096))
        before = disk.read(0, disk.capacity)
        s1.state = "removing"
        m.save()
        half = sorted(disk.chain.layers[0].file.slots)[::2]
        disk.chain.merge(0, half)  # ... and the process dies here
        m.fsync()
    finally:
        for d in m.disks:
            d.chain.close()
    m = VmMachine.open(config)  # finishes the removal
    try:
        assert [s.name for s in m.config.snapshots] == ["c2"]
        disk = next(d for d in m.disks if d.key == 2000)
        assert len(disk.chain.layers) == 1 and disk.read(0, disk.capacity) == before
        top = disk.top
        assert top is not None
    finally:
        m.close()
    assert not (vmdir / f"alice-{int(s1.id.rpartition('-')[2]):06d}-sesparse.vmdk").exists()
    expect = tmp_path / "before.raw"
    expect.write_bytes(before)
    same = qemu_img("compare", "-f", "vmdk", "-F", "raw", top, expect)
    assert same.returncode == 0, same.stdout + same.stderr
