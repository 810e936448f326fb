"""Preflight over SSH asks each agent its questions in few round trips (issue 13 item 3).

Hosts a and b are real OpenSSH sshd in network namespaces (fixture ``ssh_hosts``), each
datastore served by the real agent they start; the lab's control plane is local.  After a
seed (so that the claim, Bob's folder, its marker and his disks exist: the state of every
later command), ``run_preflight`` runs in this process while each agent channel counts its
round trips (a flush of frames this side then waits for the answer to) and the requests it
sends.  Before: every stat and read of the claim, the owner markers and the disks was a
request of its own, 16 per preflight, each waited for (18 round trips with the two
handshakes; 26 requests in the whole command); on a WAN link of 20 ms RTT ~0.4 s.  Now each datastore's paths are
asked in one :meth:`Datastore.peek` (one round trip, the agent answers in order), both hosts
at once, while the control-plane checks run.  With ``ssh_mode: relay`` the direct-mode probe
is not run at all (before: one ``probe_peer``, an OpenSSH login attempt from a to b).

What only a real ESXi host would show: the round trip's real cost there (its network
distance from this machine); the count is the same, it is set by the protocol.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.labkit import alice_on_a, run_cli
from tests.ssh.sshdp import write_lab_params
from vmigrate_lib import params as params_mod
from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.agentchannel import AgentChannel
from vmigrate_lib.engine.destination import prepare_destination
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.lab.workload import WorkloadSpec
from vmigrate_lib.session import close_migration, open_migration

if TYPE_CHECKING:
    from tests.ssh.sshdp import SshHosts

pytestmark = [pytest.mark.netns, pytest.mark.slow]

MiB = 1 << 20


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (4 * MiB, 2 * MiB),
                    WorkloadSpec(rate_mb_s=0.2, ack_interval=0.2)) as root:
        yield root


class Counting:
    """Round trips and requests per agent channel (keyed by the channel's transport)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trips: Counter[str] = Counter()
        self.ops: Counter[str] = Counter()
        self.waiting: set[int] = set()
        send, flush, recv = AgentChannel.send_frame, AgentChannel.flush, AgentChannel.recv_frame
        me = self

        def send_frame(ch: AgentChannel, ftype: int, payload: bytes = b"", arg: int = 0,
                       flags: int = 0) -> None:
            if ftype == proto.REQ:
                me.ops[json.loads(payload)["op"]] += 1
            send(ch, ftype, payload, arg, flags)

        def flush_(ch: AgentChannel) -> None:
            flush(ch)
            me.waiting.add(id(ch))

        def recv_frame(ch: AgentChannel) -> Any:
            if id(ch) in me.waiting:  # the first answer after a flush: one round trip
                me.waiting.discard(id(ch))
                me.trips[ch.transport.description] += 1
            return recv(ch)

        monkeypatch.setattr(AgentChannel, "send_frame", send_frame)
        monkeypatch.setattr(AgentChannel, "flush", flush_)
        monkeypatch.setattr(AgentChannel, "recv_frame", recv_frame)


#: round trips of a whole preflight after a seed, summed over both agents: each agent's
#: handshake and its peek, the relay check's statfs on each, the space check's on b; in
#: auto mode the direct probe adds one on a
MAX_TRIPS = {"relay": 7, "auto": 8}


@pytest.mark.parametrize("mode", ["relay", "auto"])
def test_preflight_round_trips(ssh_hosts: SshHosts, lab: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Before: 18 round trips in either mode (16 requests), a probe_peer in relay mode too;
    now at most 7 (relay, no probe_peer) or 8 (auto, one probe_peer), and the lines the
    same checks always printed."""
    pf = write_lab_params(ssh_hosts, lab, tmp_path, mode)
    r = run_cli(pf, "sync", "--cycles", "1", timeout=300)  # the seed: claim, folder, copies
    assert r.returncode == 0, r.stdout + r.stderr
    counting = Counting(monkeypatch)
    m = open_migration(params_mod.load(str(pf), {}))
    try:
        report = run_preflight(m)
    finally:
        close_migration(m)
    lines = {c.name: c.detail for c in report.checks}
    assert lines["source claim"] == "claimed by this migration", lines
    assert lines["destination name"].endswith("(copy in progress from this workspace)"), lines
    assert lines["destination space"].startswith("needs "), lines
    if mode == "relay":
        assert lines["transfer mode"].endswith("relay (requested) through this machine; "
                                               "direct not probed"), lines
        assert counting.ops["probe_peer"] == 0, counting.ops
    else:
        assert "auto -> direct; direct possible: " in lines["transfer mode"], lines
        assert counting.ops["probe_peer"] == 1, counting.ops
    trips = sum(counting.trips.values())
    assert trips <= MAX_TRIPS[mode], (trips, counting.trips, counting.ops)


def test_cycle_destination_set_up_round_trips(ssh_hosts: SshHosts, lab: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cycle's set-up of the destination (the source claim, Bob's folder and marker, his
    disks' sizes) on a seeded migration: before, 8 requests each waited for (10 round trips
    with the two handshakes); now one peek per side (4 round trips), the same state after."""
    pf = write_lab_params(ssh_hosts, lab, tmp_path, "relay")
    r = run_cli(pf, "sync", "--cycles", "1", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    counting = Counting(monkeypatch)
    m = open_migration(params_mod.load(str(pf), {}))
    try:
        with m.workspace:
            before = m.workspace.state.dest
            prepare_destination(m, m.vm())
            assert m.workspace.state.dest == before
    finally:
        close_migration(m)
    trips = sum(counting.trips.values())
    assert trips <= 4, (trips, counting.trips, counting.ops)
    assert set(counting.ops) == {"stat", "read_file"}, counting.ops  # nothing written
