"""A process whose dynamic loader finds no libzstd, liblz4 nor libxxhash (as a host without them).

Empty files named as the libraries' sonames, first on ``LD_LIBRARY_PATH``: glibc's
loader takes the first file of that name on the path and refuses it ("file too short",
dlopen(3)), so the agent's ``ctypes.CDLL("libzstd.so.1")`` fails as where the library is
absent, while every program that does not load them runs as usual.  Whether ESXi ships
libzstd, liblz4 or libxxhash is not known here (no ESXi host to look at): this stands for one
that does not.
"""

from __future__ import annotations

import os

from vmigrate_lib.dataplane.agent.codeclib import SONAMES
from vmigrate_lib.dataplane.agent.hashing import XXH_SONAMES

#: the codec tools link liblz4 themselves (Debian's zstd does): a tool run under the mask
#: gets the system's libraries back through a wrapper that drops the variable
TOOL_WRAPPER = '#!/bin/sh\nunset LD_LIBRARY_PATH\nexec {exe} "$@"\n'


def mask_dir(folder: str) -> str:
    """``folder`` holding the empty stand-ins (created), for ``LD_LIBRARY_PATH``."""
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o755)
    for names in (*SONAMES.values(), XXH_SONAMES):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "wb"):
                pass
            os.chmod(path, 0o644)
    return folder


def wrap_tool(bindir: str, name: str, exe: str) -> None:
    """``bindir/name`` runs ``exe`` with the system's libraries (outside the mask)."""
    path = os.path.join(bindir, name)
    with open(path, "w") as f:
        f.write(TOOL_WRAPPER.format(exe=exe))
    os.chmod(path, 0o755)
