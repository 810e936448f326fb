"""Host profiles: sshd whose sessions' agents find fewer codecs than this machine has.

``ssh_stdlib_host``: no zstd/lz4 tool on PATH and no libzstd/liblz4 for the loader, like
ESXi, whose shell has python3 and busybox but no zstd or lz4 tool (and whose python has
no zstandard module; whether it ships the libraries is not known here), so the agent
there offers zlib only.  ``ssh_tools_host``: the tools but not the libraries, so the
agent runs the tools (``zstd-bin``).  sshd's ``SetEnv`` (sshd_config(5), OpenSSH 8.7+)
sets PATH and LD_LIBRARY_PATH in every session it starts (tests/peers/codeclibs.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from tests.peers import codeclibs
from tests.peers import sshd as peers_sshd
from tests.peers.sshd import SshHost

#: the tools the agent looks for, left out of the profile's PATH
CODEC_TOOLS = ("zstd", "lz4")


def _host(name: str, tools: bool) -> Iterator[SshHost]:
    """sshd on 127.0.0.1 whose sessions' PATH has every tool of this machine but zstd and
    lz4 (or those through a wrapper, with ``tools``), the libraries masked."""
    if not os.access(peers_sshd.SSHD, os.X_OK):
        pytest.skip(f"{peers_sshd.SSHD} not found (install openssh-server)")
    with tempfile.TemporaryDirectory(prefix=f"vmigrate-{name}-") as tmp:
        os.chmod(tmp, 0o755)
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        os.chmod(bindir, 0o755)
        for folder in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
            for exe in os.listdir(folder) if os.path.isdir(folder) else ():
                link = os.path.join(bindir, exe)
                if os.path.lexists(link):
                    continue
                if exe not in CODEC_TOOLS:
                    os.symlink(os.path.join(folder, exe), link)
                elif tools:
                    codeclibs.wrap_tool(bindir, exe, os.path.join(folder, exe))
        libs = codeclibs.mask_dir(os.path.join(tmp, "nolibs"))
        with peers_sshd.start_sshd(name, extra_config=[
                f"SetEnv PATH={bindir} LD_LIBRARY_PATH={libs}"]) as srv:
            yield srv.host


@pytest.fixture(scope="module")
def ssh_stdlib_host() -> Iterator[SshHost]:
    """A host with neither the codec tools nor their libraries (the agent offers zlib)."""
    yield from _host("stdlib", tools=False)


@pytest.fixture(scope="module")
def ssh_tools_host() -> Iterator[SshHost]:
    """A host with the zstd and lz4 tools but not their libraries (``zstd-bin``)."""
    yield from _host("tools", tools=True)
