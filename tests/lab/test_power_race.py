"""Lab power state comes from the guest processes themselves: never two copies on one disk set.

A launcher killed (SIGKILL) right after it started the guest, before anything
was recorded, leaves a running orphan.  The re-run must see that orphan as
"powered on" and must not start a second guest on the same disks.

On a real ESXi host the same rule is kept by the host's file locks: the running
VM holds locks on its files, so a second power-on of the same ``.vmx`` fails
whatever any inventory says (VMware: "the lock files prevent the second user
from powering on the virtual machine",
https://docs.vmware.com/en/VMware-Workstation-Player-for-Windows/16.0/com.vmware.player.win.using.doc/GUID-82154846-411F-4BA9-A18A-23B61BD4F9A2.html;
on NFS datastores the ``.lck-XXX`` files, ESX Configuration Guide 4.0).  The lab imitates that with an ``flock``
held by the guest process for its lifetime.  Only a real host shows VMFS's own
lock timings and its multi-host (heartbeat) locks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.lab.power import GUEST_MODULE, LOCK_PATIENCE, powered_off

#: Power Alice on from a separate process, and SIGKILL that process the moment
#: its child (the guest) exists: the worst point, before anything is recorded.
#: The hook is in this script (a Popen subclass), not in the product.
_LAUNCHER = textwrap.dedent(
    """
    import os, signal, subprocess, sys

    class KillAfterSpawn(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if "{module}" in args[0]:
                os.kill(os.getpid(), signal.SIGKILL)

    subprocess.Popen = KillAfterSpawn
    from vmigrate_lib.control.lab import LabHost
    LabHost(sys.argv[1], "esx-a").power_on("alice")
    """
).format(module=GUEST_MODULE)


def guests_of(vmdir: Path) -> list[int]:
    """Pids of live (non-zombie) guest processes whose command line names ``vmdir``."""
    want = str(vmdir.resolve()).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if GUEST_MODULE.encode() in cmdline and want in cmdline and state not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


@pytest.fixture(name="reaper")
def reaper_fixture(host_a: LabHost, alice_off: str) -> Iterator[Path]:
    """Yield Alice's folder; afterwards kill any guest of hers (the orphans this test made)."""
    vmdir = host_a.vm_dir(alice_off)
    yield vmdir
    for pid in guests_of(vmdir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_launcher_after_spawn(lab_root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(lab_root)],
        capture_output=True, timeout=60, check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def steady_count(vmdir: Path, seconds: float = 3.0) -> int:
    """The number of guests once a loser (if any) had time to start and give up."""
    deadline = time.monotonic() + seconds
    counts = []
    while time.monotonic() < deadline:
        counts.append(len(guests_of(vmdir)))
        time.sleep(0.1)
    return counts[-1]


@pytest.mark.parametrize("wait_for_orphan", [True, False], ids=["orphan-booted", "orphan-starting"])
def test_killed_launcher_leaves_one_guest_and_rerun_adds_none(
    lab_root: Path, host_a: LabHost, alice_off: str, reaper: Path, wait_for_orphan: bool
) -> None:
    """A power-on killed right after spawning its guest, then powered on again: one guest.

    Proves: the orphan counts as powered on (its lock, not a file the killed
    launcher never wrote), a re-run does not start a second copy (or, when the
    orphan is still starting, the second copy gives up before touching a disk),
    power-off stops the orphan, and the surviving guest is the one whose boot check ran.
    """
    vmdir = reaper
    kill_launcher_after_spawn(lab_root)
    assert len(guests_of(vmdir)) == 1  # the orphan runs
    if wait_for_orphan:
        deadline = time.monotonic() + 30
        while host_a.power_state(alice_off) != PowerState.ON:
            assert time.monotonic() < deadline, "the orphan guest is not seen as powered on"
            time.sleep(0.05)
    host_a.power_on(alice_off)  # the operator's re-run
    assert steady_count(vmdir) == 1, f"guests running on Alice's disks: {guests_of(vmdir)}"
    host_a.wait_ready(alice_off, 30)
    survivor = guests_of(vmdir)
    st = host_a.guest_status(alice_off)
    assert st is not None and [st["pid"]] == survivor and st["boot"]["pid"] == st["pid"]
    host_a.power_off(alice_off)
    assert host_a.power_state(alice_off) == PowerState.OFF and guests_of(vmdir) == []


def test_second_guest_of_a_running_vm_exits_without_touching_disks(
    host_a: LabHost, alice_off: str, reaper: Path
) -> None:
    """A guest started by hand on a running VM's folder refuses at once and says why.

    Proves the guest itself keeps "one copy per disk set", whoever starts it.
    """
    vmdir = reaper
    host_a.power_on(alice_off)
    host_a.wait_ready(alice_off, 30)
    first = guests_of(vmdir)
    cfg = host_a.handle(alice_off).loc.config_file
    out = subprocess.run(
        [sys.executable, "-m", GUEST_MODULE, "--vmdir", str(vmdir), "--config", cfg],
        capture_output=True, timeout=60, check=False,
    )
    assert out.returncode != 0
    assert f"already running (guest pid {first[0]} holds guest.lock)" in out.stdout.decode()
    assert guests_of(vmdir) == first and host_a.guest_status(alice_off) is not None


def test_guest_started_during_an_offline_change_waits_for_it(
    host_a: LabHost, alice_off: str, reaper: Path
) -> None:
    """A guest started while a control process edits the powered-off VM's files waits.

    Proves the other half of "never two writers": offline changes (snapshot
    removal, resize, add/remove disk on a VM that is off) hold the same power
    lock (``powered_off``, used by every offline ``VmHandle.run``), so a guest
    started meanwhile (by hand, or by a launcher killed after the spawn) opens no
    disk until the change is done, and then boots normally.
    """
    vmdir = reaper
    cfg = host_a.handle(alice_off).loc.config_file
    with powered_off(vmdir) as off:
        assert off
        guest = subprocess.Popen(
            [sys.executable, "-m", GUEST_MODULE, "--vmdir", str(vmdir), "--config", cfg],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(2 * LOCK_PATIENCE)  # longer than a guest waits for a plain holder
        assert guest.poll() is None, "the guest gave up instead of waiting"
        assert host_a.power_state(alice_off) == PowerState.OFF
        assert not (vmdir / "boot.json").exists()
    deadline = time.monotonic() + 30
    while host_a.power_state(alice_off) != PowerState.ON:  # it takes the lock once free
        assert guest.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    host_a.wait_ready(alice_off, 30)
    assert guests_of(vmdir) == [guest.pid]
    host_a.power_off(alice_off)
    guest.wait(10)
