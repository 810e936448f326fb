"""Shared fixtures: a real lab (guest processes, sparse disks) per test (tests/labkit.Lab)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.labkit import Lab
from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

MiB = 1 << 20


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    roots: list[Path] = []

    def make(
        disk_sizes: tuple[int, ...] = (64 * MiB, 32 * MiB),
        rate_mb_s: float = 2.0,
        fill: float = 0.3,
        power_on: bool = True,
    ) -> Lab:
        root = tmp_path / "lab"
        roots.append(root)
        lab_up(root, disk_sizes=disk_sizes, fill=fill, power_on=power_on,
               workload=WorkloadSpec(rate_mb_s=rate_mb_s))
        return Lab(root)

    yield make
    for root in roots:
        lab_down(root)
