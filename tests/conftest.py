"""Shared fixtures: a real lab (guest processes, sparse disks) per test (tests/labkit.Lab).

And the order the suite runs in: scripts/test.sh runs it on pytest-xdist workers
(``--dist loadgroup``), which take tests from the front of the collected list as they
free up; the longest tests (tests/durations.txt) go first so the workers end together.
Tests that load the whole machine form one unit of work (one worker runs them in turn)
so they never overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests import durations
from tests.labkit import Lab
from tests.resources import Watch
from vmigrate_lib.lab.lifecycle import lab_down, lab_up
from vmigrate_lib.lab.workload import WorkloadSpec

MiB = 1 << 20

#: Tests that load the whole machine (many processes for minutes): one worker runs them
#: one after another, beside the rest of the suite, never beside each other.
HEAVY = ("tests/wave/test_lab_wave.py::", "tests/wave/test_airflow.py::")


class HeavyTogether(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
    """``--dist loadgroup`` with the HEAVY tests as one unit and every other test its own.

    xdist_group marks cannot do it under pytest 9: xdist 3.8 groups by a suffix it writes
    to ``item._nodeid``, which pytest 9's ``nodeid`` (from ``_id``) no longer reads, so
    marked tests were spread over the workers (seen: two tests of one group on gw0 and
    gw1; pytest-dev/pytest-xdist issue #1386, fix proposed in PR #1388).  Units go out in
    collected order, the heavy one first (xdist puts the unit of most tests first)."""

    def _split_scope(self, nodeid: str) -> str:
        return "heavy" if nodeid.startswith(HEAVY) else nodeid


@pytest.hookimpl(optionalhook=True)  # -p no:xdist: no such hook, none needed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """The scheduler of ``--dist loadgroup`` (scripts/test.sh); other modes stay xdist's."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return HeavyTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first (tests/durations.txt), the others in their collected order."""
    known = durations.load()
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda it: (-known.get(it.nodeid, 0.0), order[id(it)]))


WATCH = Watch()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """After each test (its teardown), what the machine has left (tests/resources.py)."""
    if report.when == "teardown" or report.failed:
        WATCH.record(report.nodeid, report.failed)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The machine's low points beside the results: CI keeps only what is printed."""
    if WATCH.first is not None:
        terminalreporter.section("machine while the suite ran (tests/resources.py)")
        for line in WATCH.lines():
            terminalreporter.write_line(line)


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


@pytest.fixture(autouse=True)
def no_session_left_open() -> Iterator[None]:
    """Every vSphere session a test opens in this process is closed by its end: a session
    left open keeps its keep-alive thread, which then logs into a closed stream once the
    simulator is gone (CI printed "--- Logging error ---" from ``_keepalive_loop``), and
    in the product a session left open is one more login on the operator's vCenter."""
    before = {t.ident for t in threading.enumerate() if t.name == "vsphere-keepalive"}
    yield
    left = [t for t in threading.enumerate()
            if t.name == "vsphere-keepalive" and t.ident not in before]
    for t in left:  # a closed session's thread may still be ending its last call
        t.join(timeout=3)
    left = [t for t in left if t.is_alive()]
    assert not left, f"{len(left)} vSphere session(s) left open (keep-alive threads)"
