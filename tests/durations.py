"""The suite's measured test durations, so parallel workers start the longest tests first.

``tests/durations.txt`` holds "seconds nodeid" lines (setup + call + teardown of one
run).  Regenerate it from a run's report::

    scripts/test.sh --durations=0 | tee /tmp/run.log
    .venv/bin/python -m tests.durations /tmp/run.log > tests/durations.txt

A test missing from the file counts as short; a stale file only makes the order worse,
never changes what runs.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

FILE = Path(__file__).with_name("durations.txt")
_LINE = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+(\S+)")


def load(path: Path = FILE) -> dict[str, float]:
    """nodeid -> seconds, from tests/durations.txt (empty when there is none)."""
    out: dict[str, float] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            secs, nodeid = line.split(maxsplit=1)
            out[nodeid.strip()] = float(secs)
    return out


def from_report(lines: Iterable[str]) -> dict[str, float]:
    """Sum pytest's ``--durations`` lines per test."""
    tot: dict[str, float] = defaultdict(float)
    for line in lines:
        m = _LINE.match(line)
        if m:
            tot[m.group(3)] += float(m.group(1))
    return dict(tot)


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        tot = from_report(f)
    print("# seconds nodeid: one run's setup+call+teardown per test (tests/durations.py)")
    for nodeid, secs in sorted(tot.items(), key=lambda kv: -kv[1]):
        if secs >= 0.5:
            print(f"{secs:.1f} {nodeid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
