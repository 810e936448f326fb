"""The lab a test drives like an operator: hosts, params, the CLI, its disks.

One class for every folder: tests/conftest.py's ``make_lab`` fixture builds it, and
the cutover tests extend it (tests/cutover/cutover_helpers.Lab).  ``alice_on_a``,
``lab_host`` and ``run_cli``: the bare lab the SSH tests serve over sshd, its hosts' params
and the CLI on a params file (one copy for tests/ssh and tests/engine)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.layout import LabLayout
from vmigrate_lib.lab.lifecycle import create_vm, lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec
from vmigrate_lib.params import MigrationParams, validate

if TYPE_CHECKING:
    from tests.peers.sshhost import SshHost


@contextlib.contextmanager
def alice_on_a(root: Path, disks: tuple[int, ...], workload: WorkloadSpec | None = None,
               fill: float = 0.25, ready_timeout: float = 30,
               down_timeout: float = 5) -> Iterator[Path]:
    """A lab at ``root`` (its parent made 0755, so that any SSH login reads it) with Alice's
    ``disks`` on esx-a's datastore1; with a ``workload`` she is powered on and ready (writing),
    else off.  The lab goes down on exit.  The tests and the benches build theirs here."""
    os.chmod(root.parent, 0o755)
    lab_up(root, vm="", power_on=False)
    try:
        create_vm(LabLayout(root), "esx-a", "datastore1", "alice", disks, workload=workload,
                  fill=fill)
        if workload is not None:
            a = LabHost(root, "esx-a")
            a.power_on("alice")
            a.wait_ready("alice", ready_timeout)
        yield root
    finally:
        lab_down(root, timeout=down_timeout)


def lab_host(h: SshHost, name: str, root: Path, **extra: Any) -> dict[str, Any]:
    """Params of lab host ``name`` whose datastores the sshd peer ``h`` serves."""
    return {"type": "lab", "host": name, "lab_root": str(root),
            "url": f"ssh://{h.user}@{h.ip}:{h.port}", "ssh_key": h.key_path,
            "ssh_known_hosts": h.known_hosts_path, **extra}


def unknown_key_params(h: SshHost, lab: Path, work: Path) -> Path:
    """``work/params.yaml``: alice's source served by ``h`` with an empty known_hosts and
    ``allow_unknown_host_key`` (the operator's opt-in to an unverified key), the
    destination local; the workspace ``work/ws``."""
    empty = work / "known_hosts"
    empty.write_text("")
    pf = work / "params.yaml"
    pf.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "operator": "test", "workspace": str(work / "ws"),
        "source": lab_host(h, "esx-a", lab, ssh_known_hosts=str(empty),
                           allow_unknown_host_key=True),
        "destination": {"type": "lab", "host": "esx-b", "lab_root": str(lab)},
    }))
    return pf


def run_cli(params: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``vmigrate ARGS --params PARAMS`` in a fresh interpreter, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args, "--params",
                           str(params)], capture_output=True, text=True, timeout=timeout,
                          check=False)


class Lab:
    """A lab rooted in a test's tmp folder, with helpers to drive it like an operator."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = root.parent

    def host(self, name: str = "esx-a") -> LabHost:
        return LabHost(self.root, name)

    def raw_params(self, **over: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "vm": "alice",
            "workspace": str(self.workdir / "ws"),
            "source": {"type": "lab", "host": "esx-a", "lab_root": str(self.root)},
            "destination": {"type": "lab", "host": "esx-b", "datastore": "datastore1",
                            "lab_root": str(self.root)},
            "sync": {"checkpoint_bytes": "4MiB"},
        }
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return raw

    def params(self, **over: Any) -> MigrationParams:
        return validate(self.raw_params(**over))

    def write_params(self, path: Path | None = None, **over: Any) -> Path:
        import yaml

        path = path or self.workdir / "params.yaml"
        path.write_text(yaml.safe_dump(self.raw_params(**over)))
        return path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vmigrate_lib.faces.cli", *args],
            cwd=self.workdir, capture_output=True, text=True, timeout=timeout,
        )

    def ds_dir(self, host: str) -> Path:
        return self.root / "hosts" / host / "datastores" / "datastore1"

    def stop_guest(self, vm: str = "alice", host: str = "esx-a", timeout: float = 30) -> None:
        h = self.host(host)
        h.shutdown_guest(vm)
        deadline = time.monotonic() + timeout
        while h.power_state(vm) != PowerState.OFF:
            if time.monotonic() > deadline:
                raise TimeoutError("guest did not shut down")
            time.sleep(0.05)
