"""The agent says at start what the datastore's file system does (issue 11 item 7; F6, F16).

Neither SEEK_DATA nor hole punching is known to work through ESXi's userworld on
VMFS or NFS (tests/peers/README.md, "issue 11 items 5 and 7": VMFS reclaims space
offline with ``vmkfstools -K``; a file system without SEEK_DATA reports the whole
file as data, lseek(2)).  So the agent probes both on a temporary file at HELLO and
reports them; preflight prints the line and sizes the space check on it.

Real agent processes (LocalTransport), on this machine's file system, compared with
an independent measurement (``lseek`` and util-linux ``fallocate --punch-hole``);
and on a Python without SEEK_DATA nor ctypes, as a trimmed ESXi Python may be (ESX
6.0's lacked sqlite3: vmware-archive/vsphere-storage-for-docker#646), where the agent
must keep serving.  What only an ESXi host shows: the probe's answer on VMFS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmigrate_lib.dataplane.client import AgentDatastore
from vmigrate_lib.dataplane.datastore import Chunk
from vmigrate_lib.dataplane.transport import LocalTransport
from vmigrate_lib.extents import Extent

MiB = 1 << 20

#: Runs the agent's argv with os.SEEK_DATA/SEEK_HOLE removed and ctypes unimportable.
BARE = '''
import os, runpy, sys
for name in ("SEEK_DATA", "SEEK_HOLE"):
    if hasattr(os, name):
        delattr(os, name)
sys.modules["ctypes"] = None
args = sys.argv[1:]
assert args[0] == "-m", args
sys.argv = [args[1]] + args[2:]
runpy.run_module(args[1], run_name="__main__", alter_sys=True)
'''


def bare_python(folder: Path) -> str:
    """A ``python`` that runs :data:`BARE` first: no SEEK_DATA, no ctypes."""
    shim = folder / "bare.py"
    shim.write_text(BARE)
    python = folder / "bare-python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {shim} \"$@\"\n")
    python.chmod(0o755)
    return str(python)


def measured(folder: Path) -> tuple[bool, bool]:
    """(SEEK_DATA skips a hole, fallocate --punch-hole frees blocks) on this file system,
    measured without the agent."""
    f = folder / "measure"
    with open(f, "wb") as out:
        out.write(b"x" * MiB)
        out.seek(2 * MiB)
        out.write(b"x" * MiB)
    fd = os.open(f, os.O_RDONLY)
    try:
        seek = os.lseek(fd, MiB, os.SEEK_DATA) == 2 * MiB
    finally:
        os.close(fd)
    before = f.stat().st_blocks
    rc = subprocess.run(["fallocate", "--punch-hole", "--offset", str(2 * MiB),
                         "--length", str(MiB), str(f)], capture_output=True).returncode
    punch = rc == 0 and f.stat().st_blocks < before
    f.unlink()
    return seek, punch


@pytest.mark.skipif(shutil.which("fallocate") is None, reason="util-linux fallocate missing")
def test_hello_reports_what_the_file_system_does(tmp_path: Path) -> None:
    """Before: HELLO carried no 'storage' (storage_probe() had nothing to read)."""
    root = tmp_path / "ds"
    root.mkdir()
    seek, punch = measured(tmp_path)
    with AgentDatastore("ds", LocalTransport(str(root))) as ds:
        probe = ds.storage_probe()
        assert probe is not None
        assert (probe.seek_data, probe.punch_hole) == (seek, punch)
        assert probe.python == sys.version.split()[0] and probe.vmkfstools is False
        assert f"SEEK_DATA {'yes' if seek else 'no'}" in probe.describe()
    assert os.listdir(root) == []  # the probe file is gone


def test_a_python_without_seek_data_nor_ctypes_still_serves(tmp_path: Path) -> None:
    """The probe says no to both; allocated() is the whole file, a hole is written as
    zeros.  Before: no probe, and allocated() killed the agent (AttributeError on
    os.SEEK_DATA), as would a hole write (ImportError on ctypes)."""
    root = tmp_path / "ds"
    root.mkdir()
    with AgentDatastore("ds", LocalTransport(str(root), python=bare_python(tmp_path))) as ds:
        probe = ds.storage_probe()
        assert probe is not None and (probe.seek_data, probe.punch_hole) == (False, False)
        ds.create_disk("d", 4 * MiB)
        with ds.open_writer("d") as w:
            w.write(Chunk(0, MiB, b"\x11" * MiB))
            w.write(Chunk(MiB, MiB, b"\x22" * MiB))
        with ds.open_writer("d") as w:
            w.write(Chunk(MiB, MiB, None))
        assert ds.allocated("d") == [Extent(0, 4 * MiB)]
    data = (root / "d").read_bytes()
    assert data[:MiB] == b"\x11" * MiB and data[MiB:2 * MiB] == bytes(MiB)


def test_a_hole_in_a_thick_disk_keeps_it_thick(tmp_path: Path) -> None:
    """A disk created thick (allocated in full, as vmkfstools -d zeroedthick makes it)
    stays allocated when a HOLE frame zeroes part of it: zeros are written where
    the data was, no hole is punched.  Before: the hole was punched (the copy thinned)."""
    root = tmp_path / "ds"
    root.mkdir()
    disk = root / "d"
    fd = os.open(disk, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 4 * MiB)
        os.pwrite(fd, b"\x33" * (2 * MiB), 0)
    finally:
        os.close(fd)
    assert disk.stat().st_blocks * 512 >= 4 * MiB
    with AgentDatastore("ds", LocalTransport(str(root))) as ds, ds.open_writer("d") as w:
        w.write(Chunk(MiB, 2 * MiB, None))
    assert disk.stat().st_blocks * 512 >= 4 * MiB
    data = disk.read_bytes()
    assert data[:MiB] == b"\x33" * MiB and data[MiB:] == bytes(3 * MiB)


def test_holes_do_not_inflate_a_thin_disk_that_cannot_punch(tmp_path: Path) -> None:
    """Where holes cannot be punched (the bare Python: no ctypes, no SEEK_DATA, as the
    probe may find on VMFS; real-esxi F6), a HOLE frame over an area never written leaves
    it unallocated, and one over data zeroes it.  Before: every hole was written as zeros,
    so a seed filled the thin destination disk to its whole size (this test: 1 MiB of data
    and a 63 MiB hole allocated all 64 MiB).  What only ESXi shows: whether VMFS reads an
    unwritten area of a thin file without allocating it (POSIX says it reads zeros)."""
    root = tmp_path / "ds"
    root.mkdir()
    with AgentDatastore("ds", LocalTransport(str(root), python=bare_python(tmp_path))) as ds:
        ds.create_disk("d", 64 * MiB)
        with ds.open_writer("d") as w:
            w.write(Chunk(0, 2 * MiB, b"\x44" * (2 * MiB)))
            w.write(Chunk(2 * MiB, 62 * MiB, None))
            w.write(Chunk(MiB, MiB, None))
    disk = root / "d"
    assert disk.stat().st_size == 64 * MiB
    assert disk.stat().st_blocks * 512 <= 3 * MiB, disk.stat().st_blocks * 512
    data = disk.read_bytes()
    assert data[:MiB] == b"\x44" * MiB and data[MiB:] == bytes(63 * MiB)
