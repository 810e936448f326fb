"""Fixtures of the cutover tests: a lab with a writing Alice, and a migration synced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cutover.cutover_helpers import Lab, make_lab, open_idle_bob
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.lab.lifecycle import lab_down
from vmigrate_lib.session import close_migration


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Lab]:
    lb = make_lab(tmp_path)
    yield lb
    lab_down(lb.root, timeout=5)


@pytest.fixture(name="mig")
def mig_fixture(lab: Lab) -> Iterator[Migration]:
    """Alice synced (seed + 2 deltas) while writing; the workspace lock is held."""
    m = open_idle_bob(lab)
    try:
        with m.workspace:
            run_cycles(m, 3, interval=0.3)
            yield m
    finally:
        close_migration(m)
