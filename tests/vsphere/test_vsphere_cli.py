"""``vmigrate`` on the command line with ``type: vsphere`` params against the simulator.

The CLI builds VsphereHosts from the params file alone, so each datastore must
be where ESXi has it: ``/vmfs/volumes/<ds>`` on the SSH host.  As root, the test
links ``/vmfs/volumes/<unique ds name>`` to the folder the simulator's datastore
(CreateLocalDatastore) lives in, and removes the links afterwards; otherwise the
tests that move data skip.  The password goes through ``password_env``.

- wrong or missing credentials: exit 2, one line, nothing created;
- a free-licence source (every write refused): ``vmigrate sync`` exits 1 with
  one line naming the licence and the SSH fallback, CBT still off, no snapshot;
- a free-licence destination (RegisterVM refused): ``vmigrate cutover`` exits 1
  with one line, rolled back (Alice running again); once allowed, a second
  ``vmigrate cutover`` completes: Bob registered, running, on Bob's files.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.lab.ctk import GRAIN, ChangeTracker

MiB = 1 << 20
CAP = 4 * MiB
VMFS = Path("/vmfs/volumes")


@dataclass
class Cli:
    src: vcsim_peer.VcsimInfo
    dst: vcsim_peer.VcsimInfo
    src_restrict: Path
    dst_restrict: Path
    src_ds: str
    dst_ds: str
    src_dir: Path
    dst_dir: Path
    tmp: Path
    ssh: tuple[Any, Any]

    def host(self, sim: vcsim_peer.VcsimInfo, ssh: Any, **kw: Any) -> dict[str, Any]:
        return {"type": "vsphere", "url": sim.url, "host": ssh.ip, "user": sim.user,
                "password_env": vsim.PW_ENV, "verify_tls": False, "ssh_user": ssh.user,
                "ssh_port": ssh.port, "ssh_key": ssh.key_path,
                "ssh_known_hosts": ssh.known_hosts_path, **kw}

    def params(self) -> Path:
        pf = self.tmp / "params.yaml"
        pf.write_text(yaml.safe_dump({
            "vm": "alice", "dest_name": "bob", "operator": "test", "downtime_budget": "5m",
            "workspace": str(self.tmp / "ws"),
            "source": self.host(self.src, self.ssh[0]),
            "destination": self.host(self.dst, self.ssh[1], datastore=self.dst_ds),
            "sync": {"allow_enable_cbt": True},
        }))
        return pf

    def run(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop(vsim.PW_ENV, None)
        if password is not None:
            env[vsim.PW_ENV] = password
        return subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args,
                               "--params", str(self.params())], capture_output=True, text=True,
                              timeout=180, check=False, env=env)

    def vmigrate(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(*args, password=self.src.password)


def one_line_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    """Exactly one ``vmigrate: error:`` line on stderr; any other line is a one-line
    ``vmigrate: warning:`` (e.g. the unverified TLS certificate, verify_tls: false)."""
    assert r.returncode == code, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    lines = r.stderr.strip().splitlines()
    errors = [x for x in lines if x.startswith("vmigrate: error: ")]
    others = [x for x in lines if not x.startswith(("vmigrate: error: ", "vmigrate: warning: "))]
    assert len(errors) == 1 and not others, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    return errors[0]


@pytest.fixture
def cli(tmp_path: Path, vcsim_binary: Path, ssh_pair: tuple[Any, Any, str]) -> Iterator[Cli]:
    os.chmod(tmp_path, 0o755)
    tag = f"{os.getpid()}x{abs(hash(tmp_path)) % 10**6}"
    src_ds, dst_ds = f"vmg-src-{tag}", f"vmg-dst-{tag}"
    src_dir, dst_dir = tmp_path / src_ds, tmp_path / dst_ds
    src_dir.mkdir()
    dst_dir.mkdir()
    made: list[Path] = []
    links: list[Path] = []
    try:
        for p in (VMFS.parent, VMFS):
            if not p.exists():
                p.mkdir()
                made.append(p)
        for name, target in ((src_ds, src_dir), (dst_ds, dst_dir)):
            (VMFS / name).symlink_to(target)
            links.append(VMFS / name)
    except OSError as exc:
        for p in links + made[::-1]:
            p.unlink() if p.is_symlink() else p.rmdir()
        pytest.skip(f"cannot link datastores under {VMFS} (needs root): {exc}")
    src_restrict, dst_restrict = tmp_path / "src.restrict", tmp_path / "dst.restrict"
    qcda = vsim.qcda_lab_command({src_ds: src_dir}, page=2 * MiB)
    try:
        with vcsim_peer.run_vcsim(qcda_cmd=qcda, binary=vcsim_binary,
                                  restrict_file=src_restrict) as src, \
                vcsim_peer.run_vcsim(binary=vcsim_binary, restrict_file=dst_restrict) as dst:
            with vsim.pyvmomi(src) as si:
                vsim.create_datastore(si, src_ds, src_dir)
                vm = vsim.create_vm(si, "alice", src_ds, CAP)
                WaitForTask(vm.PowerOnVM_Task())
                # Alice runs VMware Tools: go/no-go reads it (issue 11 item 3)
                vsim.set_guest(vm, tools="guestToolsRunning", ip="10.0.0.5", heartbeat="green")
            with vsim.pyvmomi(dst) as si:
                vsim.create_datastore(si, dst_ds, dst_dir)
            vsim.write_esxi_files(src_dir / "alice", "alice", CAP)
            flat = src_dir / "alice" / "alice-flat.vmdk"
            os.truncate(flat, CAP)
            ChangeTracker.create(src_dir / "alice" / "alice-ctk.bin", CAP).close()
            write(flat, 0, random.Random(1).randbytes(3 * GRAIN))
            yield Cli(src, dst, src_restrict, dst_restrict, src_ds, dst_ds, src_dir, dst_dir,
                      tmp_path, (ssh_pair[0], ssh_pair[1]))
    finally:
        for p in links + made[::-1]:
            p.unlink() if p.is_symlink() else p.rmdir()


def write(flat: Path, offset: int, data: bytes) -> None:
    """A guest write: the flat file and the lab change map beside it."""
    with open(flat, "r+b") as f:
        f.seek(offset)
        f.write(data)
    t = ChangeTracker(flat.with_name(flat.name.replace("-flat.vmdk", "-ctk.bin")))
    try:
        t.mark(offset, len(data))
        t.flush()
    finally:
        t.close()


def power(sim: vcsim_peer.VcsimInfo, name: str) -> str:
    with vsim.pyvmomi(sim) as si:
        vms = [v for v in vsim.objects(si, vim.VirtualMachine) if v.name == name]
        return str(vms[0].runtime.powerState) if vms else "absent"


def test_bad_credentials_exit_2_one_line(cli: Cli) -> None:
    line = one_line_error(cli.run("cutover", password="not-the-password"), 2)
    assert f"rejected user '{cli.src.user}': wrong user or password" in line, line
    line = one_line_error(cli.run("cutover", password=None), 2)
    assert f"environment variable {vsim.PW_ENV} (password_env) is not set" in line, line
    line = one_line_error(cli.run("sync", password="not-the-password"), 2)
    assert "wrong user or password" in line
    assert not (cli.tmp / "ws").exists()
    assert power(cli.src, "alice") == "poweredOn"


def test_licence_refusals_then_cutover(cli: Cli) -> None:
    # A free-licence source refuses every write: the sync stops at the first, changing nothing.
    cli.src_restrict.write_text("ReconfigVM_Task\nCreateSnapshot_Task\nShutdownGuest\n")
    line = one_line_error(cli.vmigrate("sync", "--cycles", "1"), 1)
    assert "refused by the host's licence (free ESXi does not allow API writes)" in line, line
    assert "Current license or ESXi version prohibits" in line and "SSH" in line, line
    with vsim.pyvmomi(cli.src) as si:
        alice = vsim.vm(si, "alice")
        assert not alice.config.changeTrackingEnabled and alice.snapshot is None
    cli.src_restrict.write_text("")

    r = cli.vmigrate("sync", "--cycles", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "certify identical" in r.stdout + r.stderr
    bob_dir = cli.dst_dir / "bob"
    (bob_dir / "vmware.log").touch()  # simulator: RegisterVM wants it (ESXi does not)
    write(cli.src_dir / "alice" / "alice-flat.vmdk", 2 * MiB, b"late write" * 100)

    # A free-licence destination refuses RegisterVM: rolled back, Alice runs again.
    cli.dst_restrict.write_text("RegisterVM_Task\n")
    flags = ("--shutdown-time", "1s", "--boot-time", "1s", "--ready-timeout", "30s")
    # (whether the rollback waits for Alice's guest is not seen here: the simulator keeps
    # Tools' last status through a power cycle, so she looks ready at once (the lab's
    # wait_ready waits for its guest process's own boot).  Before, this asserted the starter
    # had run first, which held only when its 0.1 s poll caught her power-off and power-on)
    with vsim.GuestStarter(cli.src, "alice", after_power_off=True):
        line = one_line_error(cli.vmigrate("cutover", *flags), 1)
    assert "cutover failed at step register and was rolled back: alice is running again" in line
    assert "refused by the host's licence" in line, line
    assert power(cli.src, "alice") == "poweredOn" and power(cli.dst, "bob") == "absent"

    cli.dst_restrict.write_text("")
    with vsim.GuestStarter(cli.dst, "bob") as guest:
        r = cli.vmigrate("cutover", *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cutover attempt 2: done" in r.stdout, r.stdout
    assert guest.done.is_set()
    assert power(cli.src, "alice") == "poweredOff" and power(cli.dst, "bob") == "poweredOn"
    assert (bob_dir / "bob-flat.vmdk").read_bytes() == \
        (cli.src_dir / "alice" / "alice-flat.vmdk").read_bytes()
    vmx = (bob_dir / "bob.vmx").read_text()
    assert 'displayName = "bob"' in vmx and 'scsi0:0.fileName = "bob.vmdk"' in vmx
    assert 'VMFS "bob-flat.vmdk"' in (bob_dir / "bob.vmdk").read_text()
