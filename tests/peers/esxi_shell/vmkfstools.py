"""``vmkfstools -c SIZE -d thin|zeroedthick|eagerzeroedthick PATH`` for the test peer.

Makes what ESXi makes for a new virtual disk: a text descriptor ``PATH`` and its
extent ``PATH`` minus ``.vmdk`` plus ``-flat.vmdk`` (VMware, "Virtual Disk Format
1.1", the descriptor's ``RW <sectors> VMFS "<flat>"`` extent line; vmkfstools'
options: VMware's "Using vmkfstools" in the vSphere Storage guide).  ``thin`` is a
sparse file; the thick kinds are allocated (eager: zeros written).  The output
line is a guess; vmigrate checks the files, not the words.
"""

from __future__ import annotations

import os
import sys

from tests.peers.esxi_shell.vim_cmd import log_call

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
KINDS = ("thin", "zeroedthick", "eagerzeroedthick")


def size_of(text: str) -> int:
    """``4096k`` or ``4096kb`` (the ``<n>[kmgt]b`` form: a guess, as in
    tests/peers/fake_vmkfstools.py, which the agent's vmkfs.py sends)."""
    if text[-2:].lower() in ("kb", "mb", "gb", "tb"):
        text = text[:-1]
    unit = _UNITS.get(text[-1:].lower())
    return int(text[:-1]) * unit if unit else int(text)


def create(size: int, kind: str, path: str) -> int:
    if not path.endswith(".vmdk") or not os.path.isdir(os.path.dirname(path) or "."):
        print(f"Failed to create virtual disk: The system cannot find the file specified "
              f"({path}).", file=sys.stderr)
        return 1
    flat = path[: -len(".vmdk")] + "-flat.vmdk"
    if os.path.exists(path) or os.path.exists(flat):
        print(f"Failed to create virtual disk: The file already exists ({path}).",
              file=sys.stderr)
        return 1
    with open(flat, "wb") as f:
        if kind == "eagerzeroedthick":
            chunk = b"\0" * (1 << 20)
            for _ in range(size // len(chunk)):
                f.write(chunk)
            f.write(b"\0" * (size % len(chunk)))
        else:
            f.truncate(size)
            if kind == "zeroedthick":
                os.posix_fallocate(f.fileno(), 0, size)
    with open(path, "w") as f:
        f.write("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
                f'createType="vmfs"\n\n# Extent description\nRW {size // 512} VMFS '
                f'"{os.path.basename(flat)}"\n\n# The Disk Data Base\n#DDB\n\n'
                f'ddb.thinProvisioned = "{1 if kind == "thin" else 0}"\n')
    print("Create: 100% done.")
    return 0


def main(argv: list[str]) -> int:
    log_call(["vmkfstools", *argv])
    if len(argv) == 5 and argv[0] == "-c" and argv[2] == "-d" and argv[3] in KINDS:
        try:
            size = size_of(argv[1])
        except ValueError:
            print(f"Invalid size: {argv[1]}", file=sys.stderr)
            return 1
        return create(size, argv[3], argv[4])
    print("vmkfstools: the test peer knows only -c SIZE -d KIND PATH", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
