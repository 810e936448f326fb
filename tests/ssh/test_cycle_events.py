"""A reconnect mid-cycle reaches the journal, the cycles table and the cycle's line.

Before (code-review §2.7, "SSH events are never journaled"): a lost agent connection was
resumed from the last acknowledged offset and the copy came out exact, but the reconnect
lived only in a log warning and in an in-memory list that only tests read; the evidence
of a cycle that had to reconnect looked like any other.

Real parts: Alice's datastore served by a real OpenSSH sshd (the SSH tests' loopback
peer), the real agent killed with SIGKILL while it streams the seed (as an ESXi host's
agent would die with its shell session: the reconnect path is the same), the engine run
in process, the evidence table built from the journal.  What only a real ESXi host would
add: other causes of a lost connection (a host's SSH service restarted, a firewall's idle
timeout), which take the same path.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.labkit import alice_on_a, lab_host
from tests.peers.sshd import SshHost
from vmigrate_lib.audit.tables import cycles_frame
from vmigrate_lib.dataplane.client import AgentDatastore
from vmigrate_lib.engine.progress import CycleEnded, Event, Reporter, format_event
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.params import validate
from vmigrate_lib.session import close_migration, open_migration

MiB = 1 << 20


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (96 * MiB,), fill=1.0) as root:
        yield root


class KillOnce(Reporter):
    """Kills the source agent once the copy has moved ``at`` bytes; keeps the lines."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.pid, self.killed = at, 0, False
        self.lines: list[str] = []

    def progress(self, done: int, total: int, rate: float) -> None:
        if not self.killed and self.pid and done >= self.at:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)

    def event(self, ev: Event, /) -> None:
        if isinstance(ev, CycleEnded):
            self.lines.append(format_event(ev))


def test_a_reconnect_is_in_the_cycle_record(ssh_loopback: SshHost, lab: Path,
                                             tmp_path: Path) -> None:
    raw: dict[str, Any] = {
        "vm": "alice", "dest_name": "bob", "workspace": str(tmp_path / "ws"),
        "source": lab_host(ssh_loopback, "esx-a", lab, ssh_mode="relay"),
        "destination": {"type": "lab", "host": "esx-b", "lab_root": str(lab)},
        "sync": {"checkpoint_bytes": "4MiB"},
    }
    reporter = KillOnce(at=8 * MiB)  # the source reads ahead 32 MiB: still streaming
    m = open_migration(validate(raw))
    m.reporter = reporter
    try:
        with m.workspace:
            src = m.src_ds("datastore1")
            assert isinstance(src, AgentDatastore)
            src.free_space()  # the agent started: its pid is in its HELLO
            reporter.pid = int(src.hello["pid"])
            run_cycles(m, 1)
    finally:
        close_migration(m)
    assert reporter.killed
    records = [json.loads(x) for x in (tmp_path / "ws" / "journal.jsonl").read_text()
               .splitlines()]
    (cyc,) = [r for r in records if r["type"] == "cycle"]
    assert cyc["certify"]["result"] == "identical", cyc["certify"]
    events = cyc["dataplane_events"]
    assert any(e["event"] == "reconnect" and e["side"] == "source" for e in events), events
    assert any(e["event"] == "resume" and e["side"] == "source" for e in events), events
    assert all(e["datastore"] for e in events), events
    table = cycles_frame(records)
    assert table["reconnects"].tolist()[0] >= 1, table
    assert "reconnect(s) to an agent" in reporter.lines[0], reporter.lines
    bob = (lab / "hosts/esx-b/datastores/datastore1/bob/bob-flat.vmdk").read_bytes()
    assert bob == (lab / "hosts/esx-a/datastores/datastore1/alice/alice-flat.vmdk").read_bytes()

