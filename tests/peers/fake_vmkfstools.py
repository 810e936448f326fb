"""A stand-in for ESXi's ``vmkfstools -c <size> -d <format> <disk>.vmdk`` (create a
virtual disk), for tests of Bob's provisioning (issue 11 item 7).

What it imitates (VMware vSphere Storage, "vmkfstools Command Syntax" / "Virtual Disk
Options" / "Supported Disk Formats", e.g.
https://docs.vmware.com/en/VMware-vSphere/7.0/com.vmware.vsphere.storage.doc/GUID-9CC98802-82D9-44B0-9735-97675258FAAE.html):
``-c`` creates the descriptor ``<disk>.vmdk`` and its extent ``<disk>-flat.vmdk``;
``-d thin`` allocates nothing up front, ``zeroedthick`` (the default) allocates the
whole size at creation, ``eagerzeroedthick`` allocates it and zeroes it.  Here the
thick formats use ``posix_fallocate`` (allocated, reads as zeros), which is what a
file system without VMFS can do.  A disk that exists is refused, exit 1.  The size
suffixes accepted (k/kb, m/mb, g/gb) are a guess from VMware's own ESXi Python
(vSphere Docker Volume Service validates ``<n>[kmgt]b``); plain numbers are bytes.

Each call is appended as JSON (argv) to ``$VMIGRATE_TEST_VMKFSTOOLS_LOG`` when set.

    install(folder, log) -> folder/vmkfstools, an executable running this file
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

LOG_ENV = "VMIGRATE_TEST_VMKFSTOOLS_LOG"
UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1 << 20, "mb": 1 << 20,
         "g": 1 << 30, "gb": 1 << 30}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([a-zA-Z]*)", text)
    if m is None or m.group(2).lower() not in UNITS:
        raise SystemExit(f"vmkfstools: invalid size {text!r}")
    return int(m.group(1)) * UNITS[m.group(2).lower()]


def descriptor(flat: str, size: int, fmt: str) -> str:
    thin = 'ddb.thinProvisioned = "1"\n' if fmt == "thin" else ""
    return ('# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\n'
            'parentCID=ffffffff\ncreateType="vmfs"\n\n# Extent description\n'
            f'RW {size // 512} VMFS "{flat}"\n\n# The Disk Data Base\n#DDB\n\n'
            f'ddb.adapterType = "buslogic"\n{thin}ddb.virtualHWVersion = "13"\n')


def main(argv: list[str]) -> int:
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(argv) + "\n")
    args = list(argv)
    size, fmt, target = None, "zeroedthick", None
    while args:
        a = args.pop(0)
        if a in ("-c", "--createvirtualdisk"):
            size = parse_size(args.pop(0))
        elif a in ("-d", "--diskformat"):
            fmt = args.pop(0)
        else:
            target = a
    if size is None or target is None or not target.endswith(".vmdk"):
        print("vmkfstools: usage: vmkfstools -c size -d format disk.vmdk", file=sys.stderr)
        return 1
    if fmt not in ("thin", "zeroedthick", "eagerzeroedthick"):
        print(f"vmkfstools: unknown disk format {fmt}", file=sys.stderr)
        return 1
    flat = target[:-len(".vmdk")] + "-flat.vmdk"
    if os.path.exists(target) or os.path.exists(flat):
        print("Failed to create virtual disk: The file already exists (39).", file=sys.stderr)
        return 1
    fd = os.open(flat, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        if fmt != "thin":
            os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    Path(target).write_text(descriptor(os.path.basename(flat), size, fmt))
    print("Create: 100% done.")
    return 0


def install(folder: Path, log: Path) -> Path:
    """``folder/vmkfstools``, an executable that runs this fake (put folder on PATH and
    ``$VMIGRATE_TEST_VMKFSTOOLS_LOG`` = log)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "vmkfstools"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log.touch()
    return exe


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
