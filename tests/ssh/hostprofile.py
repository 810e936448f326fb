"""A host profile: an sshd whose sessions find no zstd and no lz4 tool on PATH.

Like ESXi, whose shell has python3 and busybox but no zstd or lz4 tool (and whose python
has no zstandard module), so the agent there offers zlib only.  sshd's ``SetEnv``
(sshd_config(5), OpenSSH 8.7+) sets PATH in every session it starts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from tests.peers import sshd as peers_sshd
from tests.peers.sshd import SshHost

#: the tools the agent looks for, left out of the profile's PATH
CODEC_TOOLS = ("zstd", "lz4")


@pytest.fixture(scope="module")
def ssh_stdlib_host() -> Iterator[SshHost]:
    """sshd on 127.0.0.1 whose sessions' PATH has every tool of this machine but zstd
    and lz4 (a login shell's rc files still work)."""
    if not os.access(peers_sshd.SSHD, os.X_OK):
        pytest.skip(f"{peers_sshd.SSHD} not found (install openssh-server)")
    with tempfile.TemporaryDirectory(prefix="vmigrate-stdlib-") as bindir:
        os.chmod(bindir, 0o755)
        for folder in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
            for name in os.listdir(folder) if os.path.isdir(folder) else ():
                link = os.path.join(bindir, name)
                if name not in CODEC_TOOLS and not os.path.lexists(link):
                    os.symlink(os.path.join(folder, name), link)
        with peers_sshd.start_sshd("stdlib", extra_config=[f"SetEnv PATH={bindir}"]) as srv:
            yield srv.host
