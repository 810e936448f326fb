"""The dashboard's progress bar names the phase its bytes belong to (issue 14 item 9).

Before: the bar said "copy" while certify hashed the disks ("143.0 MiB of 143.0 MiB at
1508.6 MB/s" under "copy").  Real ipywidgets and the engine's own events; the event order
is the engine's (cycle start, disk planned, certify / hash-compare phase); no ESXi needed.
"""

from __future__ import annotations

import io

from vmigrate_lib.audit.dashboard import Dashboard
from vmigrate_lib.engine.progress import CycleStarted, DiskPlanned, PhaseReached


def test_bar_names_copy_certify_and_hash() -> None:
    d = Dashboard("sync", headless=False, stream=io.StringIO(), min_interval=0.0)
    d.event(CycleStarted(number=2, kind="delta"))
    d.event(DiskPlanned(key=0, mode="tracked", bytes=8 << 20, extents=3))
    d.progress(4 << 20, 8 << 20, 2e6)
    assert d.bar.description == "copy" and d.bytes_label.value.startswith("copy: 4.0 MiB")
    d.event(PhaseReached(phase="certify", detail="disk 0 (changed, sha256)"))
    assert d.bar.description == "certify" and d.bar.value == 0.0
    d.progress(8 << 20, 8 << 20, 3e6)
    assert d.bytes_label.value.startswith("certify: 8.0 MiB of 8.0 MiB")
    d.event(PhaseReached(phase="hash-compare", detail="disk 1"))
    d.progress(1 << 20, 8 << 20, 0.0)
    assert d.bytes_label.value == "hash: 1.0 MiB of 8.0 MiB"


def test_the_bar_and_the_line_say_the_time_left() -> None:
    """4 MiB of 8 MiB at 2 MB/s: 2.1 s left, in the widget and the headless line; none once
    done or before a rate is known.  Before: a 2 TB seed showed bytes and a rate and left
    the operator to divide."""
    out = io.StringIO()
    d = Dashboard("sync", headless=True, stream=out, min_interval=0.0)
    d.event(CycleStarted(number=1, kind="seed"))
    d.event(DiskPlanned(key=0, mode="full", bytes=8 << 20, extents=1))
    d.progress(4 << 20, 8 << 20, 2e6)
    assert d.bytes_label.value == "copy: 4.0 MiB of 8.0 MiB at 2.0 MB/s, 2.1 s left"
    assert out.getvalue().rstrip().endswith("4.0 MiB of 8.0 MiB  2.0 MB/s, 2.1 s left")
    d.progress(8 << 20, 8 << 20, 2e6)
    assert not d.bytes_label.value.endswith("left") and "left" not in out.getvalue().splitlines()[-1]
