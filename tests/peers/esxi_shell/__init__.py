"""A lab host served as an ESXi host: sshd, a busybox shell, ``vim-cmd`` and ``vmkfstools``.

What ESXi offers an SSH login, and what this peer copies:

* the login shell is busybox ``ash`` (ESXi's ``/bin/sh`` is busybox: VMware KB 1017910
  "Using ESXi Shell in ESXi"; no bash, no GNU coreutils options): here a root-equivalent
  user (uid 0, made for the test and removed after) whose shell is ``busybox sh``, and
  a ``PATH`` holding only busybox's applets, ``vim-cmd``, ``vmkfstools`` and ``python3``
  (ESXi ships python3 for its own tools);
* ``/vmfs/volumes/<uuid>`` folders and a ``<name>`` symlink per datastore (as ESXi's
  ``/vmfs/volumes`` holds them; the Jenkins plugin's fake ESXi host, cited in
  ``tests/fixtures/vimcmd/SOURCES.md``, models the same links): here under the peer's
  folder, pointing at the lab host's datastore folders;
* ``vim-cmd`` and ``vmkfstools`` answering from the lab in ESXi's output format
  (:mod:`.vim_cmd`, :mod:`.vmkfstools`), each call logged word for word.

Root only (the uid-0 user).  ``serve_esxi`` is a context manager; a killed run's user
is removed by the next run (name = prefix + dead pid).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import sshd as peers_sshd
from tests.peers.sshusers import cleanup_stale_users

REPO = Path(__file__).resolve().parents[3]
USER_PREFIX = "vmgesx"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


@dataclass
class EsxiPeer:
    server: peers_sshd.SshdServer
    workdir: Path
    volumes: Path  #: this host's /vmfs/volumes
    log: Path  #: one JSON argv per vim-cmd / vmkfstools call

    @property
    def host(self) -> peers_sshd.SshHost:
        return self.server.host

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def override(self, kind: str, vm: str, value: object) -> None:
        """Make the host show ``kind`` for ``vm``: ``question`` ([id, text]: a question
        holds power-on until answered), ``consolidationNeeded`` (True) or ``autostart``
        ({"startAction": ..., "startOrder": ...}: its entry in the host's autostart list)."""
        p = self.workdir / "overrides.json"
        data = json.loads(p.read_text()) if p.exists() else {}
        data.setdefault(kind, {})[vm] = value
        p.write_text(json.dumps(data))

    def host_params(self, **over: object) -> dict[str, object]:
        """A params file's ``source``/``destination`` section for this host."""
        h = self.host
        return {"type": "esxi", "host": h.ip, "ssh_user": h.user, "ssh_port": h.port,
                "ssh_key": h.key_path, "ssh_known_hosts": h.known_hosts_path,
                "datastore_root": str(self.volumes), **over}


def _bin_dir(wd: Path) -> Path:
    """busybox's applets, the two ESXi commands and python3: the login's whole PATH."""
    b = wd / "bin"
    b.mkdir()
    listed = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for applet in listed.stdout.split():
        (b / applet).symlink_to(BUSYBOX)
    (b / "python3").symlink_to(os.path.realpath("/usr/bin/python3"))  # the system's, bare
    # ESXi ships an OpenSSH client (/bin/ssh), which direct mode runs on the source host
    if os.path.exists("/usr/bin/ssh"):
        (b / "ssh").symlink_to("/usr/bin/ssh")
    for cmd, module in (("vim-cmd", "vim_cmd"), ("vmkfstools", "vmkfstools")):
        script = b / cmd
        script.write_text(
            f"#!{BUSYBOX} sh\nPYTHONPATH={shlex.quote(str(REPO))} exec "
            f"{shlex.quote(sys.executable)} -m tests.peers.esxi_shell.{module} \"$@\"\n")
        script.chmod(0o755)
    return b


def _volumes(wd: Path, lab_root: Path, host: str) -> Path:
    vol = wd / "vmfs" / "volumes"
    vol.mkdir(parents=True)
    for ds in sorted((lab_root / "hosts" / host / "datastores").iterdir()):
        u = uuid.uuid5(uuid.NAMESPACE_URL, str(ds)).hex
        vmfs_uuid = f"{u[:8]}-{u[8:16]}-{u[16:20]}-{u[20:32]}"  # VMFS: 8-8-4-12 hex digits
        (vol / vmfs_uuid).symlink_to(ds)
        (vol / ds.name).symlink_to(vmfs_uuid)
    return vol


@contextlib.contextmanager
def _root_alias(shell: Path) -> Iterator[str]:
    """A uid-0 user whose login shell is ``shell`` (real root's stays as it is)."""
    if os.geteuid() != 0:
        raise PermissionError("the ESXi peer's root login needs root")
    cleanup_stale_users(USER_PREFIX)
    name = f"{USER_PREFIX}{os.getpid()}"
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        subprocess.run(["userdel", "-f", name], check=False, capture_output=True)
    home = tempfile.mkdtemp(prefix=f"{name}-home-")
    # "*": no password login, yet not "locked" (sshd refuses a "!" account even for keys)
    subprocess.run(["useradd", "-o", "-u", "0", "-g", "0", "-M", "-p", "*", "-d", home, "-s", str(shell),
                    name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", "-f", name], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def serve_esxi(lab_root: Path, host: str, *, ip: str = "127.0.0.1",
               netns: str | None = None) -> Iterator[EsxiPeer]:
    """sshd for lab host ``host`` as an ESXi host (in ``netns`` when given)."""
    wd = Path(tempfile.mkdtemp(prefix=f"vmg-esxi-{os.getpid()}-"))
    os.chmod(wd, 0o755)
    try:
        b = _bin_dir(wd)
        vol = _volumes(wd, lab_root.resolve(), host)
        log, state = wd / "calls.jsonl", wd / "ids.json"
        env = {"PATH": str(b), "VMG_ESXI_LAB": str(lab_root.resolve()), "VMG_ESXI_HOST": host,
               "VMG_ESXI_VOLUMES": str(vol), "VMG_ESXI_STATE": str(state),
               "VMG_ESXI_LOG": str(log)}
        setenv = "SetEnv " + " ".join(f"{k}={v}" for k, v in env.items())
        with _root_alias(b / "sh") as user, peers_sshd.start_sshd(
                "esxi", ip=ip, netns=netns, user=user, workdir=str(wd / "sshd"),
                extra_config=[setenv]) as srv:
            yield EsxiPeer(srv, wd, vol, log)
    finally:
        shutil.rmtree(wd, ignore_errors=True)


__all__ = ["EsxiPeer", "serve_esxi"]
