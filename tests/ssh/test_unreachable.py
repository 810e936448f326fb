"""An SSH host that cannot be reached at preflight: one line, exit 2, nothing changed.

A real TCP refusal: the lab's source datastores are served over SSH at
127.0.0.1:<port> where nothing listens (the kernel answers RST, the client sees
ECONNREFUSED).  What only a real ESXi host would add: its SSH service is off by
default (vSphere Security guide, "ESXi Shell and SSH"), which looks exactly
like this refusal; a firewall that drops instead gives the connect timeout's
"timed out" in the same line.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.labkit import alice_on_a
from tests.peers import sshd as peers_sshd
from vmigrate_lib.dataplane.ssh.connection import SshConnection
from vmigrate_lib.dataplane.sshconfig import SshSettings
from vmigrate_lib.errors import SshHostUnreachable, TransportError

MiB = 1 << 20


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (4 * MiB,)) as root:
        yield root


def test_preflight_names_the_unreachable_host(lab: Path, tmp_path: Path) -> None:
    port = closed_port()
    pf = tmp_path / "params.yaml"
    pf.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "operator": "test", "workspace": str(tmp_path / "ws"),
        "source": {"type": "lab", "host": "esx-a", "lab_root": str(lab),
                   "url": f"ssh://root@127.0.0.1:{port}", "ssh_known_hosts": "/dev/null"},
        "destination": {"type": "lab", "host": "esx-b", "lab_root": str(lab)},
    }))
    r = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "preflight", "--params",
                        str(pf)], capture_output=True, text=True, timeout=120, check=False)
    err = [x for x in r.stderr.splitlines() if x.startswith("vmigrate: error:")]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(err) == 1, r.stderr
    assert f"127.0.0.1:{port}" in err[0] and "Connection refused" in err[0], err[0]
    assert "re-run" not in err[0] and "resume" not in err[0], err[0]
    assert "sshd" in err[0]  # the hint
    assert not (tmp_path / "ws").exists()


def test_a_host_once_reached_is_a_fault_not_bad_input() -> None:
    """Mid-run (the address answered before in this process) a refusal stays a
    TransportError: retried by the datastore, exit 1, and a re-run resumes."""
    if not os.access(peers_sshd.SSHD, os.X_OK):
        pytest.skip(f"{peers_sshd.SSHD} not found")
    with peers_sshd.start_sshd("gone") as srv:
        h = srv.host
        s = SshSettings(host=h.ip, port=h.port, user=h.user, key_filename=h.key_path,
                        known_hosts=h.known_hosts_path, allow_agent=False, connect_timeout=10)
        c = SshConnection(s)
        c.transport()
        c.close()
    with pytest.raises(TransportError) as ei:
        SshConnection(s).transport()  # the same sshd, now stopped
    assert not isinstance(ei.value, SshHostUnreachable)
    assert f"{h.ip}:{h.port}" in ei.value.one_line()
    with pytest.raises(SshHostUnreachable):  # never reached in this process
        SshConnection(s.with_(port=closed_port())).transport()
