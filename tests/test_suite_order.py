"""The suite's order for parallel workers (tests/conftest.py, tests/durations.py).

pytest-xdist hands tests out in collected order to whichever worker is free, so the
longest (by tests/durations.txt) must come first or one worker ends minutes after the
other.  Collects real test files with pytest itself; nothing here needs a real host.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import durations

REPO = Path(__file__).resolve().parent.parent


def test_report_lines_sum_per_test_and_the_file_loads(tmp_path: Path) -> None:
    report = ["12.50s call     tests/a.py::t[x]", "0.50s setup    tests/a.py::t[x]",
              "3.00s call     tests/b.py::u", "(1 durations < 0.005s hidden)"]
    tot = durations.from_report(report)
    assert tot == {"tests/a.py::t[x]": 13.0, "tests/b.py::u": 3.0}
    f = tmp_path / "d.txt"
    f.write_text("# comment\n13.0 tests/a.py::t[x]\n3.0 tests/b.py::u\n")
    assert durations.load(f) == tot
    assert durations.load(tmp_path / "none.txt") == {}


def test_longest_tests_are_collected_first() -> None:
    """Before tests/conftest.py sorted them: tests/test_packaging.py's tests (alphabetically
    first, a second each) came before the wave tests of minutes."""
    known = durations.load()
    files = ["tests/test_packaging.py", "tests/wave/test_lab_wave.py"]
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *files],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert ids and ids[0].startswith("tests/wave/test_lab_wave.py::"), ids[:3]
    secs = [known.get(i, 0.0) for i in ids]
    assert secs == sorted(secs, reverse=True), list(zip(ids, secs))


def test_heavy_tests_share_one_worker() -> None:
    """The wave tests that load the machine go to one worker, one after another.  Before
    (xdist_group marks, which xdist 3.8 cannot apply under pytest 9) the two Airflow
    tests below ran on gw0 and gw1 side by side."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v",
                          "-n", "2", "--dist", "loadgroup", "tests/wave/test_airflow.py",
                          "tests/test_packaging.py", "-k",
                          "peak_counts or pair_pools or environment_yml or entry_point"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    workers = {line.split()[-1].split("::")[-1]: line.split()[0]
               for line in out.stdout.splitlines() if " PASSED " in line}
    assert len(workers) == 4, out.stdout[-2000:]
    assert workers["test_peak_counts_overlaps_only"] == workers["test_pair_pools_split_the_limits"]
