"""The Datastore's optional capabilities are declared with "not supported" defaults, and
the copier uses them without asking which data plane it has.

Real local agents (child processes) on real sparse files.  The SSH data plane's own
answers (direct push, the mode checks) are proven over real sshd in tests/ssh
(test_transport.py, test_lab_over_ssh.py); what only ESXi would show is its own
file system under the agent.
"""

from __future__ import annotations

from pathlib import Path

from vmigrate_lib.dataplane import open_local_datastore
from vmigrate_lib.dataplane.datastore import Datastore, StreamSummary
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.extents import Extent

BLOCK = 64 * 1024


def test_local_agents_declare_relay_only_and_the_copier_relays(tmp_path: Path) -> None:
    """A local agent offers no transfer-mode choice and no push (the interface's
    defaults: None); the copier relays and takes the bytes read from the agent's typed
    summary, which counts the all-zero block it read but sent as a hole.  Before: the
    copier looked for ``push_extents``/``last_summary`` with ``getattr`` and the
    interface declared neither (``Datastore.push_extents`` did not exist)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = b"\x01" * BLOCK + b"\x00" * BLOCK + b"\x02" * BLOCK
    (tmp_path / "a" / "disk").write_bytes(data)
    src: Datastore = open_local_datastore("a", str(tmp_path / "a"))
    dst: Datastore = open_local_datastore("b", str(tmp_path / "b"))
    with src, dst:
        assert Datastore.transfer_modes(src, dst) is None
        assert src.transfer_modes(dst) is None
        assert src.push_extents("disk", dst, "disk", [Extent(0, len(data))],
                                checkpoint_bytes=BLOCK) is None
        dst.create_disk("disk", len(data))
        acked: list[int] = []
        stats = copy_extents(src, "disk", dst, "disk", [Extent(0, len(data))],
                             checkpoint_bytes=BLOCK, on_checkpoint=acked.append)
        summary = src.last_read_summary()
    assert (tmp_path / "b" / "disk").read_bytes() == data
    assert isinstance(summary, StreamSummary)
    assert (stats.bytes_sent, stats.bytes_zero) == (2 * BLOCK, BLOCK)
    assert stats.bytes_read == summary.read == 3 * BLOCK  # the zero block was read, not sent
    assert acked and acked[-1] == len(data)
