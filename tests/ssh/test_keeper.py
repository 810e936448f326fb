"""The opt-in connection keeper (issue 13 item 3): ``vmigrate keep start`` holds the SSH
logins and agents, the commands that follow take an agent from it.

Hosts a and b are real OpenSSH sshd in network namespaces (fixture ``ssh_hosts``); the
lab's control plane is local, its datastores are served over SSH, Alice writes on two
disks.  sshd at ``LogLevel VERBOSE`` logs each login (``Accepted publickey for``) and each
exec channel (``Starting session: command``), so the hosts' own logs say who logged in
and when.  The keeper is OpenSSH's ControlMaster/ControlPersist idea (ssh_config(5),
https://man.openbsd.org/ssh_config: a master connection shared through a unix socket,
kept after its first user for a set time) applied to vmigrate's logins and agents, with
the caller's uid checked with SO_PEERCRED (unix(7)).

What only a real ESXi host shows: its sshd's session limit (``MaxSessions``: OpenSSH's
default 10, sshd_config(5); 1 on a host hardened with the DISA STIG rule ESXI-67-000028,
https://www.tenable.com/audits/items/DISA_STIG_VMware_vSphere_6.7_ESXi_Bare_Metal_Host_v1r3.audit:27cdb5c96d1045794a60d45b87f1d0bc):
with 1, each spare agent needs a login of its own (the keeper opens them, up to 8 per
host); and how long an idle session stays up there (ESXi's own idle timeouts,
``ClientAliveCountMax``), which ends a spare the keeper then replaces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.labkit import alice_on_a, run_cli
from tests.peers import sshusers
from tests.ssh.sshdp import write_lab_params
from vmigrate_lib.dataplane.keep import wire
from vmigrate_lib.dataplane.keep.control import keepers, sockets
from vmigrate_lib.lab.workload import WorkloadSpec

if TYPE_CHECKING:
    from tests.ssh.sshdp import SshHosts

pytestmark = [pytest.mark.netns, pytest.mark.slow]

MiB = 1 << 20
#: the CLI run in-process, then whether paramiko was loaded (a kept command never needs it)
LOADED = """
import runpy, sys
sys.argv = ["vmigrate", *sys.argv[1:]]
try:
    runpy.run_module("vmigrate_lib.faces.cli", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print("paramiko loaded:", "paramiko" in sys.modules)
"""


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (8 * MiB, 4 * MiB),
                    WorkloadSpec(rate_mb_s=0.5, ack_interval=0.2)) as root:
        yield root


@pytest.fixture(name="runtime")
def runtime_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's own runtime folder, 0700 in /tmp (the keeper's sockets go in
    ``<it>/vmigrate``); every keeper left is stopped afterwards."""
    run = Path(tempfile.mkdtemp(prefix="vmg-keep-run-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    try:
        yield run
    finally:
        os.chmod(run / "vmigrate", 0o700) if (run / "vmigrate").exists() else None
        for st in keepers()[0].values():
            try:
                os.kill(int(st["pid"]), signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(run, ignore_errors=True)


def logins(ssh_hosts: SshHosts, marks: dict[str, int]) -> dict[str, int]:
    """Logins from this machine on each host since ``marks`` (log lengths)."""
    here = ssh_hosts.topology.root_ip
    return {role: sum(1 for line in ssh_hosts.servers[role].log()[marks[role]:].splitlines()
                      if "Accepted publickey for" in line and f" from {here} port " in line)
            for role in ("a", "b")}


def marks(ssh_hosts: SshHosts) -> dict[str, int]:
    return {r: len(ssh_hosts.servers[r].log()) for r in ("a", "b")}


def keep_start(pf: Path, *extra: str) -> dict[str, Any]:
    r = run_cli(pf, "keep", "start", "--for", "5m", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    live, _ = keepers()
    assert len(live) == 1, live
    return next(iter(live.values()))


def vmigrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def seeded(ssh_hosts: SshHosts, lab: Path, tmp_path: Path) -> Path:
    pf = write_lab_params(ssh_hosts, lab, tmp_path, "relay")
    r = run_cli(pf, "sync", "--cycles", "1", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return pf


def test_a_command_through_the_keeper_logs_in_nowhere_and_copies_identical_data(
        ssh_hosts: SshHosts, lab: Path, tmp_path: Path, runtime: Path) -> None:
    """Before (no keeper): one login per host per command.  With the keeper: its own
    logins at ``keep start``, none by the commands, which do not even load paramiko; the
    cycles certify identical; the folder is 0700 and each socket 0600; ``keep stop`` ends
    it and removes its sockets."""
    pf = seeded(ssh_hosts, lab, tmp_path)
    before = marks(ssh_hosts)
    st = keep_start(pf)
    assert logins(ssh_hosts, before) == {"a": 1, "b": 1}
    assert (os.stat(runtime / "vmigrate").st_mode & 0o777) == 0o700
    assert {os.stat(p).st_mode & 0o777 for p in sockets()} == {0o600}
    for _ in range(2):
        m = marks(ssh_hosts)
        r = run_cli(pf, "sync", "--cycles", "1", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "certify identical" in r.stdout + r.stderr
        assert "warning" not in r.stderr, r.stderr
        assert logins(ssh_hosts, m) == {"a": 0, "b": 0}
    r = subprocess.run([sys.executable, "-c", LOADED, "sync", "--cycles", "1", "--params",
                        str(pf)], capture_output=True, text=True, timeout=300, check=False)
    assert r.stdout.strip().splitlines()[-1] == "paramiko loaded: False", r.stdout + r.stderr
    served = {h["host"]: h["served"] for h in keepers()[0][st["pid"]]["hosts"]}
    assert all(n >= 6 for n in served.values()), served  # preflight's + a disk's, 3 times
    r = vmigrate("keep", "status")
    assert f"keeper {st['pid']}" in r.stdout and "served" in r.stdout, r.stdout
    r = vmigrate("keep", "stop")
    assert r.returncode == 0 and "stopped 1 keeper" in r.stdout, r.stdout + r.stderr
    deadline = time.monotonic() + 10
    while sockets() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sockets() == []


def test_a_dead_keeper_falls_back_with_one_line(
        ssh_hosts: SshHosts, lab: Path, tmp_path: Path, runtime: Path) -> None:
    """A keeper killed (SIGKILL: its sockets stay, nobody answers): the command says so in
    one line per host and logs in itself, as without a keeper."""
    pf = seeded(ssh_hosts, lab, tmp_path)
    st = keep_start(pf)
    os.kill(st["pid"], signal.SIGKILL)
    time.sleep(0.3)
    m = marks(ssh_hosts)
    r = run_cli(pf, "sync", "--cycles", "1", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if "keeper not used" in x]
    assert len(lines) == 2 and all("connecting directly" in x for x in lines), r.stderr
    assert logins(ssh_hosts, m) == {"a": 1, "b": 1}


def test_another_uid_is_refused_and_logged(
        ssh_hosts: SshHosts, lab: Path, tmp_path: Path, runtime: Path) -> None:
    """The folder is 0700, so another user cannot reach the socket at all; loosened by
    hand (0755 folder, 0666 socket), the keeper still refuses a caller of another uid
    (SO_PEERCRED) before reading its request, and logs it."""
    pf = seeded(ssh_hosts, lab, tmp_path)
    st = keep_start(pf)
    sock = sockets()[0]
    os.chmod(runtime / "vmigrate", 0o755)
    os.chmod(sock, 0o666)
    os.chmod(runtime, 0o755)
    try:
        with sshusers.throwaway_user("vmgkp") as (user, _pw):
            prog = ("import socket, sys\n"
                    "s = socket.socket(socket.AF_UNIX)\n"
                    "s.connect(sys.argv[1])\n"
                    "try:\n"
                    "    s.sendall(b'{\"op\": \"status\"}\\n')\n"
                    "except BrokenPipeError:\n"  # refused before it reads: its answer waits
                    "    pass\n"
                    "print(s.recv(4096).decode())\n")
            r = subprocess.run(["/usr/bin/python3", "-c", prog, str(sock)], user=user,
                               capture_output=True, text=True, timeout=30, check=False)
    except sshusers.UserError as exc:
        pytest.skip(str(exc))
    assert r.stdout.strip(), r.stderr
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert answer["ok"] is False and "not the keeper's" in answer["error"], r.stdout + r.stderr
    os.chmod(runtime / "vmigrate", 0o700)  # the status below checks the folder again
    st = keepers()[0][st["pid"]]
    assert st["refused"] == 1
    log = next((runtime / "vmigrate").glob("keeper-*.log")).read_text()
    assert "refused a connection from pid" in log


def test_the_keeper_runs_no_command_a_client_sends(
        ssh_hosts: SshHosts, lab: Path, tmp_path: Path, runtime: Path) -> None:
    """Crafted requests: a folder with a shell command in it, a folder outside the
    datastores, an unknown op carrying a command, an agent request with an extra key,
    another host's digest.  Each gets an error; nothing runs on the host (the marker file
    the command would make stays absent)."""
    pf = seeded(ssh_hosts, lab, tmp_path)
    keep_start(pf)
    sock = next(p for p in sockets() if p.name.startswith(f"{ssh_hosts.a.ip}_"))
    digest = sock.name.split(".")[-2]
    marker = tmp_path / "pwned"
    ds = lab / "hosts" / "esx-a" / "datastores" / "datastore1"
    crafted = [
        {"op": "agent", "digest": digest, "root": f"{ds}; touch {marker}"},
        {"op": "agent", "digest": digest, "root": "/etc"},
        {"op": "agent", "digest": digest, "root": f"{ds}/../../../../../etc"},
        {"op": "exec", "command": f"touch {marker}"},
        {"op": "agent", "digest": digest, "root": str(ds), "command": f"touch {marker}"},
        {"op": "agent", "digest": "0" * 20, "root": str(ds)},
    ]
    for req in crafted:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(str(sock))
        wire.send_line(s, req)
        answer = wire.recv_line(s)
        s.close()
        assert answer["ok"] is False, (req, answer)
    time.sleep(0.5)
    assert not marker.exists()


def test_killing_the_keeper_mid_cycle_leaves_a_resumable_state(
        ssh_hosts: SshHosts, lab: Path, tmp_path: Path, runtime: Path,
        shape_link: Any) -> None:
    """The keeper killed while a cycle streams through it: to the command a dropped
    connection (its reconnects find nobody, exit 1, state kept); the re-run connects
    directly (one line) and resumes to a certified copy."""
    pf = seeded(ssh_hosts, lab, tmp_path)
    st = keep_start(pf)
    shape_link("b", rate="4mbit")
    time.sleep(3)  # Alice writes ~1.5 MiB: the delta takes seconds at 4 Mbit/s
    proc = subprocess.Popen([sys.executable, "-m", "vmigrate_lib.faces.cli", "sync", "--cycles",
                             "1", "--params", str(pf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    vm_dir = lab / "hosts" / "esx-a" / "datastores" / "datastore1" / "alice"
    deadline = time.monotonic() + 60
    while not list(vm_dir.glob("*-sesparse.vmdk")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the cycle's snapshot: its delta file appears
    assert proc.poll() is None, "the command ended before its cycle was seen"
    time.sleep(0.5)
    os.kill(st["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    r = run_cli(pf, "sync", "--cycles", "1", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "certify identical" in r.stdout + r.stderr
    assert "keeper not used" in r.stderr


def gone(pid: int, within: float = 15.0) -> bool:
    """The keeper ``pid`` ended (and removed its sockets) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return sockets() == []
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("flags", [("--for", "2s"), ("--for", "5m", "--idle", "1s")])
def test_the_keeper_ends_by_itself(ssh_hosts: SshHosts, lab: Path, tmp_path: Path,
                                   runtime: Path, flags: tuple[str, ...]) -> None:
    """At its expiry (``--for``), or after ``--idle`` with nothing served, the keeper ends
    and removes its sockets; a command after it connects directly and says nothing."""
    pf = write_lab_params(ssh_hosts, lab, tmp_path, "relay")
    r = run_cli(pf, "keep", "start", *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    pid = int(r.stdout.split("keeper ")[1].split()[0])
    assert gone(pid)
    r = run_cli(pf, "preflight", timeout=120)
    assert "keeper" not in r.stderr, r.stderr
