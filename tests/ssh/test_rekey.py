"""SSH rekeying: at or below RFC 4344's bound, and really happening over real sshd.

RFC 4344 section 3.2: with an L-bit block cipher, rekey at least every
2**(L/4) blocks; AES (L = 128) gives 2**32 blocks of 16 bytes = 2**36 bytes
(64 GiB), which is where OpenSSH rekeys AES by default (``RekeyLimit``
"default", sshd_config(5); ``packet.c`` sets max_blocks = 1 << (block_size * 2)).
Section 3.1 bounds packets by 2**32 (sequence number wrap).

What only a real ESXi sshd would add: its own rekey limit may be lower, in which
case it starts the rekey and paramiko follows (the same exchange this test runs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.peers.sshd import SshHost
from tests.ssh.sshdp import MiB, settings_for
from vmigrate_lib.dataplane import open_ssh_datastore
from vmigrate_lib.dataplane.ssh import SshAgentDatastore
from vmigrate_lib.dataplane.sshconfig import RFC4344_AES_BYTES, RFC4344_PACKETS, SshSettings
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.errors import ParameterError
from vmigrate_lib.extents import Extent

AES_BYTES_BOUND = 2**32 * 16  # 2**(128/4) blocks of 16 bytes
PACKET_BOUND = 2**32


def test_defaults_within_rfc4344(ssh_loopback: SshHost, tmp_path: Path) -> None:
    """The settings' defaults and the live transport's packetizer limits."""
    assert RFC4344_AES_BYTES == AES_BYTES_BOUND and RFC4344_PACKETS <= PACKET_BOUND
    s = SshSettings(host="h")
    assert 0 < s.rekey_bytes <= AES_BYTES_BOUND and 0 < s.rekey_packets <= PACKET_BOUND
    os.chmod(tmp_path, 0o755)
    ds = open_ssh_datastore("d", str(tmp_path), settings_for(ssh_loopback))
    assert isinstance(ds, SshAgentDatastore)
    try:
        ds.free_space()
        p = ds.transport.conn.transport().packetizer
        assert 0 < p.REKEY_BYTES <= AES_BYTES_BOUND, p.REKEY_BYTES
        assert 0 < p.REKEY_PACKETS <= PACKET_BOUND, p.REKEY_PACKETS
    finally:
        ds.close()


def test_limit_above_the_bound_is_refused() -> None:
    with pytest.raises(ParameterError) as ei:
        SshSettings(host="h", rekey_bytes=2**40)
    assert "RFC 4344" in ei.value.one_line()


def test_rekey_happens_in_a_transfer(
    ssh_loopback: SshHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1 MiB limit (public settings field): a 16 MiB copy rekeys many times, exactly."""
    os.chmod(tmp_path, 0o755)
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    data = os.urandom(16 * MiB)
    (ra / "d").write_bytes(data)
    low = settings_for(ssh_loopback, rekey_bytes=MiB)
    a = open_ssh_datastore("a", str(ra), low)
    b = open_ssh_datastore("b", str(rb), low)
    try:
        with caplog.at_level(logging.DEBUG, logger="paramiko.transport"):
            b.create_disk("d", len(data))
            copy_extents(a, "d", b, "d", [Extent(0, len(data))])
    finally:
        a.close()
        b.close()
    switches = [r for r in caplog.records if "Switch to new keys" in r.getMessage()]
    # two connections: one initial key exchange each, the rest are rekeys
    assert len(switches) - 2 >= 8, len(switches)  # 16 seen here (two connections, 16 MiB each)
    assert (rb / "d").read_bytes() == data
