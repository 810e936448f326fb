"""lab up / status / down, and input checks of the lab's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.errors import HostNotFound, ParameterError, VmNotFound
from vmigrate_lib.lab.blockfmt import make_block, parse_header
from vmigrate_lib.lab.lifecycle import lab_down, lab_status, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

MiB = 1 << 20


def test_lab_up_status_down(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    status = lab_up(root, disk_sizes=(16 * MiB, 8 * MiB), fill=0.2)
    try:
        assert sorted(status.hosts) == ["esx-a", "esx-b"]
        assert [ds.name for ds in status.hosts["esx-b"]] == ["datastore1"]
        (alice,) = status.vms()
        assert alice.name == "alice" and alice.host == "esx-a" and alice.power == "poweredOn"
        assert alice.cbt_enabled and alice.pid and alice.workload["rate_mb_s"] == 1.0
        assert [d["capacity"] for d in alice.disks] == [16 * MiB, 8 * MiB]
        assert 0 < alice.disks[0]["allocated"] < 16 * MiB
        assert status.hosts["esx-a"][0].free > 0
        assert "alice: poweredOn" in str(status)
        host = LabHost(root, "esx-a")
        info = host.wait_ready("alice", 30)
        assert [d.path for d in info.disks] == ["alice/alice-flat.vmdk", "alice/alice_1-flat.vmdk"]
        assert host.datastores() == ["datastore1"]
        with pytest.raises(VmNotFound):
            host.find_vm("nobody")
        with pytest.raises(HostNotFound):
            LabHost(root, "esx-z")
        again = lab_up(root, disk_sizes=(16 * MiB, 8 * MiB))  # idempotent
        assert again.vms()[0].pid == alice.pid
    finally:
        assert lab_down(root) == ["esx-a/alice"]
    assert LabHost(root, "esx-a").power_state("alice") == PowerState.OFF
    assert lab_status(root).vms()[0].power == "poweredOff"
    lab_down(root, remove=True)
    assert not root.exists()
    assert not lab_status(root).exists


@pytest.mark.parametrize(
    "bad",
    [
        {"block_size": 1000},
        {"block_size": 3 * 4096},
        {"rate_mb_s": -1},
        {"hot_fraction": 0},
        {"hot_share": 2},
        {"colour": "blue"},
    ],
)
def test_bad_workload_parameters(bad: dict[str, object]) -> None:
    with pytest.raises(ParameterError):
        WorkloadSpec.from_dict(bad)


def test_block_format_roundtrip() -> None:
    block = make_block(2001, 8192, 77, 123456)
    head = parse_header(block)
    assert head is not None and (head.disk_key, head.block, head.seq) == (2001, 77, 123456)
    assert len(block) == 8192
