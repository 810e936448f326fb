"""A small change map is queried without numpy, with the same answer (issue 13 item 3).

The lab's control plane loaded numpy with every command (0.1-0.3 s of a command's start,
measured with ``python -X importtime``) for a query that a plain scan answers in
milliseconds on a map of up to 65 536 grains (a 4 GiB disk).  Real hosts answer
``QueryChangedDiskAreas`` themselves: this is the lab's cost only, so the proof here is
that both ways give exactly the same extents on real map files.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from vmigrate_lib.lab import ctk
from vmigrate_lib.lab.ctk import GRAIN, ChangeTracker


def filled(path: Path, grains: int, seed: int) -> tuple[ChangeTracker, str, str]:
    """A map whose grains carry random generations 0..6; change ids of gen 2 and 5."""
    t = ChangeTracker.create(path, grains * GRAIN - 4096)  # the last grain is cut short
    rnd = random.Random(seed)
    for g in range(1, 7):
        t.mark_grains(sorted(rnd.sample(range(grains), grains // 5)))
        if g == 2:
            since = t.advance()
        elif g == 5:
            snap = t.advance()
        else:
            t.advance()
    t.flush()
    return t, since, snap


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scan_and_numpy_give_the_same_extents(tmp_path: Path, seed: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    grains = 3000
    t, since, snap = filled(tmp_path / "d-ctk.bin", grains, seed)
    t.close()
    r = ChangeTracker(tmp_path / "d-ctk.bin", writable=False)
    try:
        capacity = grains * GRAIN - 4096
        scanned = r.changed(snap, since, capacity)
        monkeypatch.setattr(ctk, "SCAN_GRAINS", 0)  # the numpy path, as for a large map
        with_numpy = r.changed(snap, since, capacity)
    finally:
        r.close()
    assert scanned == with_numpy
    assert scanned and scanned[-1].start + scanned[-1].length <= capacity
