"""Checks of the cutover tests: a real lab with a writing Alice (fixtures in
tests/cutover/conftest.py).  ``Watch`` polls both VMs' power state in a thread for the whole test,
so "never two copies powered on" is checked all the time, not only at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from tests import labkit
from tests.fsproof import sha
from vmigrate_lib import params as params_mod
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.state import CutoverRecord
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.lab.layout import LabLayout
from vmigrate_lib.lab.lifecycle import create_vm, lab_up
from vmigrate_lib.lab.verify import verify_copy
from vmigrate_lib.lab.workload import WorkloadSpec
from vmigrate_lib.session import close_migration, open_migration

MiB = 1 << 20
DISKS = ((2000, "alice-flat.vmdk", "bob-flat.vmdk"), (2001, "alice_1-flat.vmdk", "bob_1-flat.vmdk"))


class Lab(labkit.Lab):
    """The shared lab (tests/labkit.py) with Alice writing on esx-a and a params file
    for her migration to Bob on esx-b; ``params()`` reads that file."""

    def __init__(self, root: Path, params_file: Path) -> None:
        super().__init__(root)
        self.params_file = params_file
        self.a, self.b = LabHost(root, "esx-a"), LabHost(root, "esx-b")

    def params(self, **over: Any) -> params_mod.MigrationParams:
        """The params file as the CLI reads it (``over``: the shared Lab's own params)."""
        return super().params(**over) if over else params_mod.load(self.params_file)

    @property
    def alice_dir(self) -> Path:
        return self.a.vm_dir("alice")

    @property
    def bob_dir(self) -> Path:
        return self.b.layout.datastore_dir("esx-b", "datastore1") / "bob"

    def alice_on(self) -> bool:
        return self.a.power_state("alice") == PowerState.ON

    def bob_on(self) -> bool:
        return self.b.vm_exists("bob") and self.b.power_state("bob") == PowerState.ON


def make_lab(tmp_path: Path, rate: float = 2.0, disks: tuple[int, ...] = (16 * MiB, 8 * MiB)) -> Lab:
    root = tmp_path / "lab"
    lab_up(root, vm="", power_on=False)
    create_vm(LabLayout(root), "esx-a", "datastore1", "alice", disks,
              workload=WorkloadSpec(rate_mb_s=rate, ack_interval=0.2), fill=0.25)
    a = LabHost(root, "esx-a")
    a.power_on("alice")
    a.wait_ready("alice", 30)
    pf = tmp_path / "params.yaml"
    pf.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "operator": "test", "downtime_budget": "30s",
        "source": {"type": "lab", "host": "esx-a", "lab_root": str(root)},
        "destination": {"type": "lab", "host": "esx-b", "lab_root": str(root)},
        "workspace": str(tmp_path / "ws"),
    }))
    return Lab(root, pf)


def open_idle_bob(lb: Lab) -> Migration:
    """A migration whose Bob does not write once started, so his disks can be compared."""
    m = open_migration(lb.params())
    m.dest = LabHost(lb.root, "esx-b", register_workload=WorkloadSpec(rate_mb_s=0))
    return m


def synced(lb: Lab) -> Lab:
    """Alice synced (seed + 2 deltas) while writing, the workspace released again: what an
    operator's ``vmigrate sync`` leaves for a ``vmigrate cutover`` to start from."""
    m = open_migration(lb.params())
    try:
        with m.workspace:
            run_cycles(m, 3, interval=0.3)
    finally:
        close_migration(m)
    return lb


class Watch:
    """Polls both power states in a thread for the whole ``with`` block.

    Only samples that read both states count: reading a VM that is being
    unregistered can raise, and a watcher that counted those would pass with no
    evidence at all.  On entry it waits for a first good sample (the watch is live
    before the action starts); on exit it asserts that no good sample saw both VMs
    on, that at least ``min_samples`` were good, and that at most
    ``max_error_rate`` of the attempts raised (the first errors are shown)."""

    def __init__(self, lb: Lab, min_samples: int = 10, max_error_rate: float = 0.1,
                 first_sample_within: float = 30.0) -> None:
        self.lb = lb
        self.first_sample_within = first_sample_within
        self.min_samples = min_samples
        self.max_error_rate = max_error_rate
        self.both = 0
        self.samples = 0  # good samples: both states read
        self.errors: list[str] = []
        self._first = threading.Event()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                both_on = self.lb.alice_on() and self.lb.bob_on()
            except Exception as exc:  # counted against the tolerated error rate
                self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                self.samples += 1
                self.both += both_on
                self._first.set()
            self._stop.wait(0.005)

    def __enter__(self) -> Watch:
        self._t.start()
        if not self._first.wait(self.first_sample_within):
            self._stop.set()
            raise AssertionError(f"the watch never read both power states: {self.errors[:3]}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        attempts = self.samples + len(self.errors)
        assert self.both == 0, f"both VMs were powered on in {self.both} samples"
        assert self.samples >= self.min_samples, (
            f"only {self.samples} good samples (need {self.min_samples}); errors: {self.errors[:3]}")
        assert len(self.errors) <= self.max_error_rate * attempts, (
            f"{len(self.errors)} of {attempts} samples raised: {self.errors[:3]}")


def assert_bob_has_every_acked_block(lb: Lab, *, exact: bool | None = None) -> None:
    """Every block Alice acknowledged (her final ack map) is on Bob's disks."""
    for key, _a, bf in DISKS:
        rep = verify_copy(lb.bob_dir / bf, lb.alice_dir / f"acks-{key}.bin", exact=exact)
        assert rep.ok, rep.problems()
        assert rep.acked > 0


def assert_identical(lb: Lab) -> None:
    for _key, af, bf in DISKS:
        assert sha(lb.alice_dir / af) == sha(lb.bob_dir / bf)


def assert_alice_back(lb: Lab) -> None:
    """Alice runs again, her own boot check passed, Bob is neither on nor registered."""
    assert lb.alice_on()
    lb.a.wait_ready("alice", 30)
    st = lb.a.guest_status("alice")
    assert st is not None and st["boot"]["ok"], st
    assert not lb.b.vm_exists("bob")


def cli(lb: Lab, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmigrate_lib.faces.cli", *args, "--params", str(lb.params_file)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
        check=False,
    )


def journal(lb: Lab, type_: str | None = None) -> list[dict[str, Any]]:
    from vmigrate_lib.engine.workspace import Workspace

    return list(Workspace(lb.params().workspace).journal.records(type_))


def cutover_record(m: Migration) -> CutoverRecord:
    """The migration's cutover record; fails when no cutover has started."""
    rec = m.workspace.state.cutover
    assert rec is not None, "no cutover record in state.json"
    return rec
