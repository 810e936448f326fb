"""Faults on the SSH data plane: killed agents, dropped connections, a full destination.

Every resumed copy is checked byte for byte against a destination pre-filled
with garbage, so a region skipped or written wrong would show.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.peers import sshd as peers_sshd
from tests.peers.sshd import SshHost
from tests.ssh.sshdp import MiB, agents_serving, garbage, kill_session, make_disk, settings_for
from vmigrate_lib.dataplane import open_ssh_datastore
from vmigrate_lib.dataplane.ssh import SshAgentDatastore
from vmigrate_lib.dataplane.sshconfig import DirectRoute
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.errors import NoSpaceLeft, SshHostUnreachable, TransportError
from vmigrate_lib.extents import Extent, clip

if TYPE_CHECKING:
    from tests.ssh.sshdp import SshHosts

SIZE = 48 * MiB


@pytest.fixture
def disks(tmp_path: Path) -> tuple[Path, Path, bytes]:
    os.chmod(tmp_path, 0o755)
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    want = make_disk(ra / "d", SIZE, seed=3)
    garbage(rb / "d", SIZE)
    return ra, rb, want


def _pair(h_a: SshHost, h_b: SshHost, ra: Path, rb: Path, **kw: Any) -> tuple[SshAgentDatastore, SshAgentDatastore]:
    a = open_ssh_datastore("a", str(ra), settings_for(h_a, **kw))
    b = open_ssh_datastore("b", str(rb), settings_for(h_b, **kw))
    assert isinstance(a, SshAgentDatastore) and isinstance(b, SshAgentDatastore)
    return a, b


def _fault_at(nbytes: int, action: Any) -> Any:
    fired: list[int] = []

    def progress(done: int, _total: int) -> None:
        if done >= nbytes and not fired:
            fired.append(done)
            action()

    return progress, fired


def test_killed_agent_is_detected(ssh_loopback: SshHost, disks: tuple[Path, Path, bytes]) -> None:
    ra, rb, _ = disks
    a, b = _pair(ssh_loopback, ssh_loopback, ra, rb, retries=0)
    try:
        a.free_space()
        pid = int(a.hello["pid"])
        stream = a.read_extents("d", [Extent(0, SIZE)])
        next(stream)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(TransportError, match="agent was killed") as ei:
            for _ in stream:
                pass
        assert "datastore a" in str(ei.value)
    finally:
        a.close()
        b.close()


def _copy_through_fault(
    ssh: SshHost, disks: tuple[Path, Path, bytes], side: str, at: int, fault: Callable[[int], Any]
) -> Any:
    """Copy the disk while ``fault(agent pid)`` strikes one side at ``at`` bytes; the copy
    must still come out exact.  Returns the stricken datastore for the caller's checks."""
    ra, rb, want = disks
    # small window and read-ahead, so that the source has not sent everything yet
    a, b = _pair(ssh, ssh, ra, rb, retries=3, window_size=2 * MiB)
    a.prefetch_bytes = 2 * MiB
    victim = a if side == "source" else b
    try:
        a.free_space()
        b.free_space()
        progress, fired = _fault_at(at, lambda: fault(int(victim.hello["pid"])))
        copy_extents(a, "d", b, "d", [Extent(0, SIZE)], checkpoint_bytes=8 * MiB,
                     on_checkpoint=lambda _o: None, on_progress=progress)
        assert fired and victim.reconnects >= 1
        assert (rb / "d").read_bytes() == want
        return victim
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("side", ["source", "destination"])
def test_killed_agent_reconnects_and_copy_is_exact(
    ssh_loopback: SshHost, disks: tuple[Path, Path, bytes], side: str
) -> None:
    victim = _copy_through_fault(ssh_loopback, disks, side, 16 * MiB,
                                 lambda pid: os.kill(pid, signal.SIGKILL))
    assert any(e["event"] == "resume" for e in victim.events)


@pytest.mark.parametrize("side", ["source", "destination"])
def test_dropped_connection_resumes_from_last_ack(
    ssh_loopback: SshHost, disks: tuple[Path, Path, bytes], side: str
) -> None:
    """Kill the sshd session process: the TCP connection itself goes away mid-cycle."""
    victim = _copy_through_fault(ssh_loopback, disks, side, 20 * MiB, kill_session)
    assert victim.transport.conn.connects == 2  # a new SSH connection


def test_retries_are_bounded(disks: tuple[Path, Path, bytes]) -> None:
    """A host that goes away mid-run and stays away (its sshd stopped, the session
    killed): bounded reconnects, then a TransportError (exit 1, a re-run resumes),
    not the preflight's "unreachable" (the address answered before)."""
    ra, _, _ = disks
    with peers_sshd.start_sshd("going") as srv:
        a = open_ssh_datastore("a", str(ra), settings_for(srv.host, retries=2, backoff=0.05))
        assert isinstance(a, SshAgentDatastore)
        a.free_space()
        srv.stop()  # the listener is gone: reconnects are refused
        kill_session(int(a.hello["pid"]))
        with pytest.raises(TransportError, match="gave up after 2 reconnects") as ei:
            a.stat("d")
        assert not isinstance(ei.value, SshHostUnreachable)
        assert a.reconnects == 2 and f"{srv.host.ip}:{srv.host.port}" in ei.value.one_line()
        a.close()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_destination_is_clear_and_resumable(
    ssh_loopback: SshHost, disks: tuple[Path, Path, bytes], small_tmpfs: Path
) -> None:
    ra, _, want = disks
    a, b = _pair(ssh_loopback, ssh_loopback, ra, small_tmpfs, retries=2)
    try:
        b.create_disk("d", SIZE)
        ckpts: list[int] = []
        with pytest.raises(NoSpaceLeft, match="no space left") as ei:
            copy_extents(a, "d", b, "d", a.allocated("d"), checkpoint_bytes=4 * MiB,
                         on_checkpoint=ckpts.append)
        assert "free space" in str(ei.value)  # the hint says what to do
        assert ckpts and b.reconnects == 0  # a full disk is not a network fault
        # the operator frees space; the re-run copies from the last checkpoint on
        subprocess.run(["mount", "-o", "remount,size=96m", str(small_tmpfs)], check=True)
        rest = clip(a.allocated("d"), ckpts[-1], SIZE)
        copy_extents(a, "d", b, "d", rest)
        assert (small_tmpfs / "d").read_bytes() == want
    finally:
        a.close()
        b.close()


@pytest.mark.netns
def test_link_down_briefly_mid_cycle(ssh_hosts: SshHosts, disks: tuple[Path, Path, bytes]) -> None:
    """``ip link set down`` on b's link for 2 s mid-copy: TCP rides it out or we reconnect."""
    ra, rb, want = disks
    a, b = _pair(ssh_hosts.a, ssh_hosts.b, ra, rb, retries=4, io_timeout=10)
    link = ssh_hosts.topology.links["b"].root_if

    def flap() -> None:
        subprocess.run(["ip", "link", "set", link, "down"], check=True)

        def up() -> None:
            time.sleep(2)
            subprocess.run(["ip", "link", "set", link, "up"], check=True)

        threading.Thread(target=up, daemon=True).start()

    try:
        progress, fired = _fault_at(16 * MiB, flap)
        t0 = time.monotonic()
        copy_extents(a, "d", b, "d", [Extent(0, SIZE)], checkpoint_bytes=8 * MiB,
                     on_checkpoint=lambda _o: None, on_progress=progress)
        assert fired and time.monotonic() - t0 >= 2
        assert (rb / "d").read_bytes() == want
    finally:
        subprocess.run(["ip", "link", "set", link, "up"], check=False)
        a.close()
        b.close()


@pytest.mark.netns
def test_direct_push_resumes_after_peer_connection_dies(
    ssh_hosts: SshHosts, disks: tuple[Path, Path, bytes]
) -> None:
    """Kill b's sshd session serving a's push: a reports it, we resume from the last ACK.

    The push is capped at 12 MB/s (4 s for the disk) so that the kill, decided when this
    process reads the ACK of 8 MiB, lands mid-push, with 3 s of push left: in full runs
    on 2 cores this process read the ACK late twice, after the push had ended (no
    reconnect to see), at 24 MB/s with the kill at 16 MiB (1.3 s left)."""
    ra, rb, want = disks
    route = DirectRoute(identity=ssh_hosts.peer_key.path, known_hosts=ssh_hosts.known_hosts_path)
    a = open_ssh_datastore("a", str(ra), settings_for(ssh_hosts.a, mode="direct", direct=route,
                                                      retries=3, bwlimit=12e6))
    b = open_ssh_datastore("b", str(rb), settings_for(ssh_hosts.b))
    assert isinstance(a, SshAgentDatastore) and isinstance(b, SshAgentDatastore)
    killed: list[int] = []

    def agents_on_b() -> set[int]:
        return agents_serving(rb)

    b.free_space()  # b's own agent (and its launcher) up before the push: not the peer
    before = agents_on_b()

    def on_ckpt(off: int) -> None:
        if off >= 8 * MiB and not killed:
            # the agent on b started by a's ssh: one that was not there before the push
            # (b's own agent, or a process of its launcher, is; under load "the newest"
            # or "not b's pid" picked one of those once and the push went on unharmed)
            out = sorted(agents_on_b() - before - {b.hello.get("pid")})
            if out:
                killed.append(kill_session(out[-1]))

    try:
        copy_extents(a, "d", b, "d", [Extent(0, SIZE)], checkpoint_bytes=4 * MiB,
                     on_checkpoint=on_ckpt)
        assert killed and a.reconnects >= 1, (killed, a.events)
        assert any(e["event"] == "resume" and e["what"] == "push" for e in a.events)
        assert (rb / "d").read_bytes() == want
    finally:
        a.close()
        b.close()
