"""The agent upload over real sshd against a second local user who plants files.

Threat (issue 9, item 1): the agent is uploaded to a folder every local user can
write (``/tmp``); a file planted there by another user must never run as the SSH
login (root on ESXi).  The tests log in as root over a real OpenSSH sshd and
plant files as a real second local user (``useradd``, ``runuser``), in a fresh
sticky world-writable folder that stands for ``/tmp`` (mode 1777, as
``/tmp`` on Debian and, by POSIX convention, on ESXi's ramdisk ``/tmp``).

What only a real ESXi host would show: its busybox ``sh`` and its python3
(3.5 on 6.5, 3.8 on 7/8) run the same remote scripts; the scripts are checked
to be Python 3.5 syntax here (``test_remote_scripts_are_python35``).
"""

from __future__ import annotations

import ast
import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import sshusers
from tests.peers.sshd import SshHost
from tests.ssh.sshdp import MiB, settings_for
from vmigrate_lib.dataplane import open_ssh_datastore
from vmigrate_lib.dataplane.ssh import SshAgentDatastore
from vmigrate_lib.dataplane.transport import agent_zipapp
from vmigrate_lib.errors import AgentFileUnsafe

PY3 = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"  # not a venv under /root
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plants files as a second local user: root only")


@pytest.fixture(scope="module")
def intruder() -> Iterator[str]:
    """A real second local user on this machine (removed afterwards)."""
    with contextlib.ExitStack() as stack:
        try:
            name, _password = stack.enter_context(sshusers.throwaway_user("vmgin"))
        except sshusers.UserError as e:
            pytest.skip(str(e))
        yield name


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sticky, world-writable folder standing for the host's /tmp."""
    d = Path(tempfile.mkdtemp(prefix="vmg-shared-", dir="/tmp"))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    r = tmp_path / "ds"
    r.mkdir()
    (r / "disk").write_bytes(os.urandom(MiB))
    return r


def as_user(user: str, script: str, stdin: bytes = b"") -> None:
    """Run a python3 script as ``user`` (a real unprivileged process)."""
    r = subprocess.run(["runuser", "-u", user, "--", PY3, "-c", script], input=stdin,
                       capture_output=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-500:]


def payload(marker: Path) -> bytes:
    """Python source of exactly the agent zipapp's size that leaves ``marker`` when run."""
    size = len(agent_zipapp()[0])
    src = (f"import os\nopen({str(marker)!r}, 'w').write(str(os.getuid()))\n").encode()
    return src + b"#" * (size - len(src) - 1) + b"\n"


def plant(user: str, path: Path, data: bytes, *, mkdir: Path | None = None) -> None:
    script = "import os\n"
    if mkdir is not None:
        script += f"os.mkdir({str(mkdir)!r}); os.chmod({str(mkdir)!r}, 0o777)\n"
    script += (f"import sys; open({str(path)!r}, 'wb').write(sys.stdin.buffer.read()); "
               f"os.chmod({str(path)!r}, 0o755)\n")
    as_user(user, script, data)


def _open(h: SshHost, root: Path, shared: Path) -> SshAgentDatastore:
    ds = open_ssh_datastore("ds", str(root), settings_for(h, agent_dir=str(shared), retries=0))
    assert isinstance(ds, SshAgentDatastore)
    return ds


def test_file_planted_at_the_old_upload_path_never_runs(
    ssh_loopback: SshHost, intruder: str, shared: Path, root_dir: Path
) -> None:
    """A same-size file at ``<tmp>/vmigrate-agent-<hash>.pyz`` (the old deterministic
    path, reused unchecked) is not run; the agent lands in a private 0700 folder."""
    marker = shared / "ran-as"
    digest16 = agent_zipapp()[1]
    plant(intruder, shared / f"vmigrate-agent-{digest16}.pyz", payload(marker))
    ds = _open(ssh_loopback, root_dir, shared)
    try:
        assert ds.free_space() > 0
        assert ds.stat("disk") is not None
    finally:
        ds.close()
    assert not marker.exists(), f"the planted file ran as uid {marker.read_text()}"
    private = shared / f"vmigrate-{ssh_loopback.user}"
    st = os.lstat(private)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700
    names = sorted(p.name for p in private.iterdir())
    files = [n for n in names if not n.endswith(".code")]  # beside it: its compiled code
    assert files == [f"vmigrate-agent-{digest16}.pyz"], names  # no temporary left behind
    assert all(n.startswith(f"{files[0]}.") for n in names if n not in files), names
    fst = os.lstat(private / files[0])
    assert fst.st_uid == os.geteuid() and not fst.st_mode & 0o022


@pytest.mark.parametrize("how", ["folder", "symlink"])
def test_private_folder_taken_by_another_user_is_refused(
    ssh_loopback: SshHost, intruder: str, shared: Path, root_dir: Path, how: str
) -> None:
    """The other user made ``<tmp>/vmigrate-root`` first (their folder, or a symlink to
    it) with a planted agent inside: one line refuses, the planted file never runs."""
    marker = shared / "ran-as"
    private = shared / f"vmigrate-{ssh_loopback.user}"
    name = f"vmigrate-agent-{agent_zipapp()[1]}.pyz"
    if how == "folder":
        plant(intruder, private / name, payload(marker), mkdir=private)
    else:
        theirs = shared / "theirs"
        plant(intruder, theirs / name, payload(marker), mkdir=theirs)
        as_user(intruder, f"import os; os.symlink({str(theirs)!r}, {str(private)!r})")
    ds = _open(ssh_loopback, root_dir, shared)
    try:
        with pytest.raises(AgentFileUnsafe) as ei:
            ds.free_space()
    finally:
        ds.close()
    line = ei.value.one_line()
    assert str(private) in line and "\n" not in str(ei.value), line
    if how == "folder":
        uid = pwd.getpwnam(intruder).pw_uid
        assert f"owned by uid {uid}" in line, line
    else:
        assert "not a directory" in line, line
    assert ei.value.exit_code == 2
    assert not marker.exists(), f"the planted file ran as uid {marker.read_text()}"


def test_digest_is_checked_before_every_run(
    ssh_loopback: SshHost, shared: Path, root_dir: Path
) -> None:
    """The installed agent changed after upload (same size): the next start refuses
    it before running it; a new connection replaces it and works."""
    marker = shared / "ran-as"
    ds = _open(ssh_loopback, root_dir, shared)
    try:
        assert ds.free_space() > 0
        agent = Path(ds.transport.conn.ensure_agent())
        agent.write_bytes(payload(marker))  # what a broken upload or an intruder would leave
        ds.transport.close()
        ds.channel.disconnect()
        with pytest.raises(AgentFileUnsafe) as ei:
            ds.free_space()
        assert "sha256" in ei.value.one_line() and str(agent) in ei.value.one_line()
    finally:
        ds.close()
    assert not marker.exists(), "the changed agent ran"
    again = _open(ssh_loopback, root_dir, shared)
    try:
        assert again.free_space() > 0
    finally:
        again.close()
    assert agent.read_bytes() == agent_zipapp()[0]


def test_remote_scripts_are_python35() -> None:
    """The scripts run by the host's python3 parse as Python 3.5 (ESXi 6.5's version)."""
    from vmigrate_lib.dataplane.ssh import agentfile

    for src in (agentfile.INSTALL_SCRIPT, agentfile.LAUNCH_SCRIPT):
        ast.parse(src, feature_version=(3, 5))
