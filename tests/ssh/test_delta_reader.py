"""The agent's reader of snapshot deltas (issue 12 item 3): SEsparse and vmfsSparse/COWD.

The reference for both formats is QEMU's vmdk driver (qemu/qemu ``block/vmdk.c``:
``check_se_sparse_const_header``, ``check_se_sparse_volatile_header``,
``vmdk_open_se_sparse``, ``vmdk_open_vmfs_sparse``, ``get_cluster_offset``), and
``qemu-img`` (Debian qemu-utils) reads every file these tests make, so the reader
is checked against files it did not write and a reader it is not.  What only a real
ESXi host would show: SEsparse and COWD files written by ESXi itself (journal,
free-bitmap and back-map regions, version fields QEMU does not check).
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lab.lab_helpers import wait_writes
from tests.labkit import Lab
from tests.peers.cowd import write_cowd
from tests.peers.sshd import SshHost
from tests.ssh.sshdp import settings_for
from vmigrate_lib.dataplane.agent.deltaformats import DeltaFormatError, open_delta
from vmigrate_lib.dataplane.ssh import open_ssh_datastore
from vmigrate_lib.errors import DeltaFormatUnknown
from vmigrate_lib.lab.acks import AckMap, ack_path
from vmigrate_lib.lab.machine import VmMachine
from vmigrate_lib.lab.sesparse import SeSparseFile, descriptor

QEMU_IMG = shutil.which("qemu-img")
MiB = 1 << 20
G = 4096


def qemu_img(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if QEMU_IMG is None:
        pytest.skip("qemu-img not installed (qemu-utils)")
    return subprocess.run([QEMU_IMG, *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def grains_of(extents: list[list[object]] | list[tuple[int, int]], grain: int = G) -> set[int]:
    out: set[int] = set()
    for e in extents:
        off, length = int(e[0]), int(e[1])  # type: ignore[call-overload]
        out.update(range(off // grain, (off + length - 1) // grain + 1))
    return out


def read_back(path: Path, model: bytes | bytearray, touched: set[int],
              grain: int = G) -> dict[str, object]:
    """The reader lists exactly the ``touched`` grains of the delta at ``path`` and reads
    the model's bytes there; returns its format, grain size and extent kinds."""
    with open_delta(str(path)) as got:
        ext = got.extents()
        assert got.grain == grain and grains_of(ext, grain) == touched
        for off, n, _k in ext:
            assert got.read(off, n) == bytes(model[off : off + n])
        return {"format": got.format, "grain": got.grain, "kinds": {k for _o, _n, k in ext}}


def assert_qemu_reads(delta: Path, parent: bytes, model: bytes | bytearray,
                      create_type: str) -> None:
    """``qemu-img compare``: the chain d.vmdk (flat ``parent``) <- d-000001.vmdk (whose
    extent is ``delta``, in the same folder) reads as ``model`` on the whole disk."""
    folder, cap = delta.parent, len(parent)
    (folder / "d-flat.vmdk").write_bytes(parent)
    (folder / "d.vmdk").write_bytes(descriptor(cid=5, parent_cid=0xFFFFFFFF, create_type="vmfs",
                                               extent="d-flat.vmdk", capacity=cap))
    (folder / "d-000001.vmdk").write_bytes(descriptor(
        cid=6, parent_cid=5, create_type=create_type, extent=delta.name, capacity=cap,
        parent_hint="d.vmdk"))
    (folder / "model.raw").write_bytes(model)
    done = qemu_img("compare", "-f", "vmdk", "-F", "raw", folder / "d-000001.vmdk",
                    folder / "model.raw")
    assert done.returncode == 0, done.stdout + done.stderr


# --- the lab's guest: the reader returns exactly what the guest wrote ------------------------
def test_reader_over_ssh_returns_exactly_the_grains_the_guest_wrote(
    make_lab: Callable[..., Lab], ssh_loopback: SshHost
) -> None:
    """Snapshot taken with Alice off (her ack map is then exactly the disk), she runs and
    writes, shuts down cleanly (exact ack map): the blocks whose acknowledged sequence
    changed are exactly the 4 KiB grains the agent, reached over a real sshd, finds in
    the frozen ``alice-000001-sesparse.vmdk``, and the bytes it reads there are the
    guest's.  Before this work the agent had no such op (``unknown op``)."""
    host_a = make_lab(disk_sizes=(16 * MiB, 8 * MiB), rate_mb_s=8.0, fill=0.25,
                      power_on=False).host()
    vm = "alice"
    vmdir = host_a.vm_dir(vm)
    before = AckMap.load(ack_path(vmdir, 2000))
    snap = host_a.create_snapshot(vm, "vmigrate-1")
    host_a.power_on(vm)
    host_a.wait_ready(vm, 30)
    wait_writes(host_a, vm, 300)
    host_a.shutdown_guest(vm)
    assert host_a.wait_powered_off(vm, 30)
    after = AckMap.load(ack_path(vmdir, 2000))
    assert after.clean
    bs = after.block_size
    written = {i for i, seq in after.seqs.items() if before.seqs.get(i) != seq}
    assert written
    want = grains_of([(i * bs, bs) for i in written])
    number = int(snap.id.rpartition("-")[2])
    rel = f"{vm}/alice-{number:06d}-sesparse.vmdk"
    ds = open_ssh_datastore("a", str(vmdir.parent), settings_for(ssh_loopback, retries=0))
    try:
        delta = ds.delta_extents(rel)
        assert delta is not None and delta.format == "seSparse" and delta.grain == G
        assert not delta.zero
        assert grains_of([(e.start, e.length) for e in delta.data]) == want
        machine = VmMachine.open(vmdir / f"{vm}.vmx.json")
        try:
            disk = next(d for d in machine.disks if d.key == 2000)
            for e in delta.data[:50]:
                assert ds.read_delta(rel, e.start, e.length) == disk.read(e.start, e.length)
        finally:
            machine.close()
        with pytest.raises(DeltaFormatUnknown) as err:
            ds.delta_extents(f"{vm}/alice-flat.vmdk")  # not a delta: refused, named
        assert "alice-flat.vmdk" in err.value.one_line() and "\n" not in err.value.one_line()
    finally:
        ds.close()


# --- property: reader vs the lab writer's log ------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_reader_returns_the_writer_log_grain_for_grain(tmp_path: Path, seed: int) -> None:
    """Random writes (1 byte to 80 KiB, anywhere, some all-zero) through the lab's
    SEsparse writer: the reader lists exactly the grains written, as data, and reads
    back the model's bytes; ``qemu-img`` agrees with the model on the whole disk."""
    rng = random.Random(seed)
    cap = rng.choice((8, 17, 40)) * MiB
    parent = rng.randbytes(cap) if seed % 2 else bytes(cap)
    model = bytearray(parent)
    path = tmp_path / "d-000001-sesparse.vmdk"
    delta = SeSparseFile.create(path, cap)
    touched: set[int] = set()
    for _ in range(rng.randrange(1, 300)):
        n = rng.randrange(1, 80 * 1024)
        off = rng.randrange(0, cap - n)
        data = bytes(n) if rng.random() < 0.2 else rng.randbytes(n)
        delta.write(off, data, lambda o, ln: parent[o : o + ln])
        model[off : off + n] = data
        touched.update(range(off // G, (off + n - 1) // G + 1))
    delta.close()
    assert read_back(path, model, touched)["kinds"] == {"data"}
    assert_qemu_reads(path, parent, model, "seSparse")


# --- strict validation ---------------------------------------------------------------------
def _u64(path: Path, at: int, value: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(struct.pack("<Q", value))


def _field(path: Path, index: int) -> int:
    value: int = struct.unpack_from("<Q", path.read_bytes(), 8 * index)[0]
    return value


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:600])


def _gd_entry_at(p: Path) -> int:
    return _field(p, 16) * 512


def _gte_at(p: Path) -> int:
    return _field(p, 18) * 512  # grain table 0, entry of grain 0


#: (what is damaged, how, whether QEMU refuses it too)
CORRUPTIONS: list[tuple[str, Callable[[Path], None], bool]] = [
    ("magic", lambda p: _u64(p, 0, 0xCAFEBABF), True),
    ("version", lambda p: _u64(p, 8, 0x0000000200000002), True),
    ("grain size", lambda p: _u64(p, 24, 16), True),
    ("grain table size", lambda p: _u64(p, 32, 128), True),
    ("flags", lambda p: _u64(p, 40, 1), True),
    ("reserved", lambda p: _u64(p, 48, 1), True),
    ("padding", lambda p: _u64(p, 400, 1), True),
    ("volatile magic", lambda p: _u64(p, 512, 0xCAFECAFF), True),
    ("journal to replay", lambda p: _u64(p, 512 + 24, 1), True),
    ("directory entry type", lambda p: _u64(p, _gd_entry_at(p), 0x2000000000000000), True),
    ("grain entry type", lambda p: _u64(p, _gte_at(p), 0x4000000000000000), True),
    ("type-0 entry with bits", lambda p: _u64(p, _gte_at(p), 0x5), True),
    # QEMU reads past the end of the file as zeros: these two it accepts, silently
    ("grain slot beyond the file", lambda p: _u64(p, _gte_at(p), 0x3000000000100000), False),
    ("table beyond the region", lambda p: _u64(p, _gd_entry_at(p), 0x1000000000000009), False),
    ("truncated", _truncate, False),
]


@pytest.mark.parametrize("what,damage,qemu_refuses", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_damaged_or_unknown_sesparse_file_is_refused(
    tmp_path: Path, what: str, damage: Callable[[Path], None], qemu_refuses: bool
) -> None:
    """Each field QEMU's ``check_se_sparse_*_header`` and ``get_cluster_offset`` check
    (and table bounds QEMU does not) is refused by the reader with a one-line error
    naming the file, never a guess; where QEMU also refuses, ``qemu-img convert``
    fails on the same file."""
    cap = 8 * MiB
    path = tmp_path / "d-000001-sesparse.vmdk"
    delta = SeSparseFile.create(path, cap)
    delta.write(0, b"\x01" * G, lambda o, n: bytes(n))
    delta.close()
    with open_delta(str(path)) as ok:
        assert ok.extents() == [[0, G, "data"]]
    damage(path)
    with pytest.raises(DeltaFormatError) as err:
        open_delta(str(path)).close()
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    if qemu_refuses:
        (tmp_path / "d-flat.vmdk").write_bytes(bytes(cap))
        (tmp_path / "d.vmdk").write_bytes(descriptor(cid=1, parent_cid=0xFFFFFFFF,
                                                     create_type="vmfs", extent="d-flat.vmdk",
                                                     capacity=cap))
        (tmp_path / "d-000001.vmdk").write_bytes(descriptor(
            cid=2, parent_cid=1, create_type="seSparse", extent=path.name, capacity=cap,
            parent_hint="d.vmdk"))
        done = qemu_img("convert", "-f", "vmdk", "-O", "raw", tmp_path / "d-000001.vmdk",
                        tmp_path / "out.raw")
        assert done.returncode != 0, f"QEMU read a file with a bad {what}"


# --- vmfsSparse / COWD ---------------------------------------------------------------------
@pytest.mark.parametrize("granularity", [1, 8])
def test_cowd_delta_is_read_as_qemu_reads_it(tmp_path: Path, granularity: int) -> None:
    """QEMU cannot create vmfsSparse, so the fixture is built from the layout QEMU reads
    (tests/peers/cowd.py); ``qemu-img compare`` proves QEMU reads it as the model, and
    the reader returns exactly the grains written and their bytes."""
    rng = random.Random(granularity)
    cap = 24 * MiB
    parent = rng.randbytes(cap)
    writes = []
    for _ in range(120):
        n = rng.randrange(1, 20000)
        writes.append((rng.randrange(0, cap - n), rng.randbytes(n)))
    model = bytearray(parent)
    for off, data in writes:
        model[off : off + len(data)] = data
    path = tmp_path / "d-000001-delta.vmdk"
    touched = write_cowd(path, cap, writes, parent, granularity=granularity)
    got = read_back(path, model, touched, grain=512 * granularity)
    assert got["format"] == "vmfsSparse" and got["grain"] == 512 * granularity
    assert_qemu_reads(path, parent, model, "vmfsSparse")


@pytest.mark.parametrize("kw,what", [({"version": 2}, "version 2"),
                                     ({"dirty": True}, "uncleanShutdown")])
def test_unknown_or_unclean_cowd_is_refused(tmp_path: Path, kw: dict[str, object], what: str) -> None:
    """A COWD version other than 1, or a file marked not cleanly closed, is refused
    (QEMU reads neither field; refusing is this reader's choice, never a guess)."""
    path = tmp_path / "d-delta.vmdk"
    write_cowd(path, 4 * MiB, [(0, b"x")], bytes(4 * MiB), **kw)  # type: ignore[arg-type]
    with pytest.raises(DeltaFormatError, match=what):
        open_delta(str(path)).close()
