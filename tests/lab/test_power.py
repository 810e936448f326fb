"""Power: clean shutdown flushes the ack map, hard power-off loses only unacked state."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.lab.lab_helpers import (
    wait_off,
    wait_writes,
)
from tests.leftovers import guests_of_tests, session_alive
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.acks import AckMap
from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.power import lock_holder, process_alive
from vmigrate_lib.lab.verify import verify_copy


def test_shutdown_flushes_acks_and_the_base_verifies(host_a: LabHost, alice: str) -> None:
    vmdir = host_a.vm_dir(alice)
    wait_writes(host_a, alice, 500)
    info = host_a.find_vm(alice)
    assert info.power == PowerState.ON and info.tools_running and info.guest_ip
    host_a.shutdown_guest(alice)
    wait_off(host_a, alice)
    assert lock_holder(vmdir) is None  # the guest ended: its power lock is free
    assert host_a.find_vm(alice).tools_running is False
    for disk in info.disks:
        acks = AckMap.load(host_a.ack_path(alice, disk.key))
        assert acks.clean and acks.seqs
        report = verify_copy(vmdir / disk.path.split("/")[-1], acks)
        assert report.ok, report.problems()
        assert report.acked == len(acks.seqs) and report.exact
    # the log says what happened
    assert "clean shutdown" in (vmdir / "guest.log").read_text()


def test_power_off_is_hard_and_power_on_boots_again(host_a: LabHost, alice: str) -> None:
    wait_writes(host_a, alice, 300)
    host_a.power_off(alice)
    assert host_a.power_state(alice) == PowerState.OFF
    acks = AckMap.load(host_a.ack_path(alice, 2000))
    assert not acks.clean  # no final flush: the map is a lower bound
    report = verify_copy(host_a.vm_dir(alice) / "alice-flat.vmdk", acks)
    assert report.ok and not report.exact, report.problems()
    host_a.power_off(alice)  # idempotent
    host_a.power_on(alice)
    info = host_a.wait_ready(alice, 30)
    assert info.tools_running
    st = host_a.guest_status(alice)
    assert st is not None and st["boot"]["ok"]
    # sequence numbers continue above everything already on disk
    assert int(st["next_seq"]["2000"]) > acks.max_seq
    host_a.power_on(alice)  # idempotent


def test_a_guest_whose_vm_folder_is_removed_stops(host_a: LabHost, alice: str) -> None:
    """The lab's guests run detached (their own session, as a VM outlives the client that
    powered it on), so a test run killed before its lab went down left them writing for
    ever; once the run's temp folder is cleaned (pytest's next session removes it), the
    guest sees its VM folder gone and stops within a second.  Lab only: a real VM's
    files cannot be removed while it runs (ESXi holds a lock on each file of a running VM: VMware KB 10051,
    "Investigating virtual machine file locks on ESXi")."""
    vmdir = host_a.vm_dir(alice)
    wait_writes(host_a, alice, 50)
    pid = lock_holder(vmdir)
    assert pid is not None and process_alive(pid, vmdir)
    shutil.rmtree(vmdir)
    deadline = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = process_alive(pid)
    if alive:  # the lab's teardown cannot find it any more
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"guest {pid} still ran without its VM folder"


def test_guests_of_killed_test_runs_are_found_and_only_those(
        host_a: LabHost, alice: str) -> None:
    """``scripts/test.sh`` stops, before the suite, the guests a killed run left
    (tests/leftovers.py): those whose VM folder lies in a pytest temp folder whose session
    is over (its ``.lock`` names a dead pid, as a killed session leaves it).  Never this
    live session's (Alice here), never a lab of the operator's elsewhere.  Listing only:
    stopping them here would stop other workers' guests."""
    pid = lock_holder(host_a.vm_dir(alice))
    assert pid is not None and session_alive(str(host_a.vm_dir(alice)))
    assert pid not in dict(guests_of_tests())
    dead = subprocess.Popen(["true"])
    dead.wait()
    # a session folder as a killed run leaves it, beside pytest's numbered ones
    users = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    killed = Path(tempfile.mkdtemp(prefix="pytest-vmgkilled-", dir=users))
    own = Path(tempfile.mkdtemp(prefix="vmg-operator-lab-"))
    try:
        (killed / ".lock").write_text(str(dead.pid))
        for root in (killed, own):
            lab_up(root / "lab", disk_sizes=(4 * 1024 * 1024,), fill=0.1)
        theirs = lock_holder(LabHost(killed / "lab", "esx-a").vm_dir("alice"))
        mine = lock_holder(LabHost(own / "lab", "esx-a").vm_dir("alice"))
        listed = dict(guests_of_tests())
        assert theirs is not None and theirs in listed, listed
        assert mine is not None and mine not in listed
    finally:
        for root in (killed, own):
            lab_down(root / "lab", timeout=5)
            shutil.rmtree(root, ignore_errors=True)
