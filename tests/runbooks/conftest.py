"""A small real lab per test, and the parameters the runbooks get for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

MiB = 1 << 20
SECRET_ENV = "VMIGRATE_TEST_RUNBOOK_SECRET"
SECRET_VALUE = "s3cr3t-Value-0f-the-t3st"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Path]:
    """A running Alice on esx-a with two small disks; the folder is the kernel's cwd."""
    lab_up(tmp_path / ".vmigrate-lab", disk_sizes=(16 * MiB, 8 * MiB), fill=0.25,
           workload=WorkloadSpec(rate_mb_s=2.0, ack_interval=0.2))
    yield tmp_path
    lab_down(tmp_path / ".vmigrate-lab", timeout=5)


@pytest.fixture
def params(lab: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One params mapping for both runbooks (as a params file would be); the source
    references a secret whose value must never be archived."""
    monkeypatch.setenv(SECRET_ENV, SECRET_VALUE)
    return {
        "vm": "alice",
        "hosts": "lab",
        "source": {"type": "lab", "host": "esx-a", "lab_root": ".vmigrate-lab",
                   "ssh_password_env": SECRET_ENV},
        "destination": {"type": "lab", "host": "esx-b", "lab_root": ".vmigrate-lab"},
        "workspace": "workspaces/alice",
        "downtime_budget": "2m",
        "change_id": "CHG-TEST-1",
        "operator": "pytest",
        "sync": {"max_cycles": 4},
    }
