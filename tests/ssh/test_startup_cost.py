"""Start-up of a whole command over SSH (issue 13 item 3): what one ``vmigrate sync --cycles 1``
costs each host, counted in the host's own sshd log.

Hosts a and b are real OpenSSH sshd in network namespaces (fixture ``ssh_hosts``); the lab's
control plane is local, its datastores are served over SSH (``url: ssh://...``), Alice has
two disks copied in parallel (``sync.parallel_disks`` 2).  sshd at ``LogLevel VERBOSE`` logs
each login (``Accepted publickey for``) and each exec channel (``Starting session: command``),
as OpenSSH's auth2.c and session.c print them.

Before: every datastore handle opened its own SSH connection (2 logins per host per
command), and the direct-mode probe of preflight ran the agent's install check on b (one more
exec and python3 start there) although b's agent had just started from the checked file.
Now one login per host serves every datastore, agent and probe of the command, and each
host runs one exec per agent (one per disk copied at the same time: an agent serves one
stream at a time).  What only a real ESXi host would show: what each exec costs there
(busybox ash, the host's python3), i.e. what each saved exec saves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.labkit import alice_on_a, run_cli
from tests.ssh.sshdp import write_lab_params
from vmigrate_lib.lab.workload import WorkloadSpec

if TYPE_CHECKING:
    from tests.ssh.sshdp import SshHosts

pytestmark = [pytest.mark.netns, pytest.mark.slow]

MiB = 1 << 20


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (8 * MiB, 4 * MiB),
                    WorkloadSpec(rate_mb_s=0.5, ack_interval=0.2)) as root:
        yield root


def _counts(ssh_hosts: SshHosts, role: str, since: int) -> dict[str, int]:
    """Logins and execs from this machine (the bridge's address) and from host a."""
    log = ssh_hosts.servers[role].log()[since:].splitlines()
    here, a = ssh_hosts.topology.root_ip, ssh_hosts.a.ip

    def count(what: str, src: str) -> int:
        return sum(1 for line in log if what in line and f" from {src} port " in line)

    return {"logins": count("Accepted publickey for", here),
            "execs": count("Starting session: command", here),
            "logins from a": count("Accepted publickey for", a),
            "connections from a": count("Connection from", a)}


#: per delta sync: logins and execs from this machine on each host; logins on b from host a
#: (the direct probe and the pushes, each an OpenSSH login and an agent started on b) and
#: TCP connections from a (sshd's "Connection from", logged before any authentication)
AFTER = {
    "relay": {"a": {"logins": 1, "execs": 2, "logins from a": 0, "connections from a": 0},
              "b": {"logins": 1, "execs": 2, "logins from a": 0, "connections from a": 0}},
    "auto": {"a": {"logins": 1, "execs": 2, "logins from a": 0, "connections from a": 0},
             "b": {"logins": 1, "execs": 2, "logins from a": 2, "connections from a": 2}},
}


@pytest.mark.parametrize("mode", ["relay", "auto"])
def test_one_login_per_host_per_command(ssh_hosts: SshHosts, lab: Path, tmp_path: Path,
                                        mode: str) -> None:
    """Before, relay: a 2 logins, 2 execs; b 2 logins, 3 execs (the probe's install check).
    Auto (direct possible): the same on a, b 2 logins and 4 execs, and 5 logins on b from a
    (the preflight's probe, one more probe per disk handle in the cycle, the 2 pushes); then
    3: the cycles use preflight's answer; now 2: the first push takes the peer the probe
    kept up (agent/ops_push.py ``keep``).  Relay asked for: before, preflight still probed
    direct mode (1 connection from a on b, refused here at a's host key check as a has no
    route configured); now none, the probe could not change what runs."""
    pf = write_lab_params(ssh_hosts, lab, tmp_path, mode)

    def sync() -> dict[str, dict[str, int]]:
        marks = {r: len(ssh_hosts.servers[r].log()) for r in ("a", "b")}
        r = run_cli(pf, "sync", "--cycles", "1", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "certify identical" in r.stdout + r.stderr
        return {role: _counts(ssh_hosts, role, marks[role]) for role in ("a", "b")}

    sync()  # the seed (installs the agent on a first run)
    delta = sync()
    assert delta == AFTER[mode], delta


def test_a_parallel_disks_agents_serve_the_next_cycles(ssh_hosts: SshHosts, lab: Path,
                                                        tmp_path: Path) -> None:
    """``sync --cycles 2``: the second disk's stream keeps its agents for the next cycle, as
    the first disk's handles always did.  Before: each cycle opened that stream's pair and
    closed it after the copy, so every further cycle of a command cost each host one more
    exec and python3 start (a 2-cycle delta command: 3 execs per host); now 2, whatever the
    number of cycles.  The copy stays certified identical each cycle.  What only a real ESXi
    host would show: what each saved exec is worth there (bench_startup measures it on these
    peers and on an ESXi-like shell)."""
    pf = write_lab_params(ssh_hosts, lab, tmp_path, "relay")
    seed = run_cli(pf, "sync", "--cycles", "1", timeout=300)
    assert seed.returncode == 0, seed.stdout + seed.stderr
    marks = {r: len(ssh_hosts.servers[r].log()) for r in ("a", "b")}
    r = run_cli(pf, "sync", "--cycles", "2", "--interval", "0s", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (r.stdout + r.stderr).count("certify identical") == 2, r.stdout + r.stderr
    for role in ("a", "b"):
        got = _counts(ssh_hosts, role, marks[role])
        assert (got["logins"], got["execs"]) == (1, 2), (role, got)
