#!/usr/bin/env python3
"""Benchmark: the seed of a two-disk VM, one disk at a time vs both at once.

    .venv/bin/python bench/bench_parallel.py [--size 1GiB] [--runs 2]

A lab VM with two fully written disks is seeded (certify off) with
``sync.parallel_disks`` 1 and 2, against what a sysadmin would do by hand: two
``cp --sparse=always`` side by side.  Prints wall times, MB/s and ratios.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vmigrate_lib.engine.sync import run_cycles  # noqa: E402
from vmigrate_lib.lab.lifecycle import lab_down, lab_up  # noqa: E402
from vmigrate_lib.params import validate  # noqa: E402
from vmigrate_lib.session import close_migration, open_migration  # noqa: E402
from vmigrate_lib.units import fmt_bytes, parse_size  # noqa: E402


def seed(work: Path, parallel: int) -> float:
    dest = work / "lab/hosts/esx-b/datastores/datastore1/alice"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(work / "ws", ignore_errors=True)
    p = validate({"vm": "alice", "workspace": str(work / "ws"),
                  "source": {"host": "esx-a", "lab_root": str(work / "lab")},
                  "destination": {"host": "esx-b", "lab_root": str(work / "lab")},
                  "sync": {"parallel_disks": parallel, "certify": "none"}})
    m = open_migration(p)
    try:
        with m.workspace:
            t0 = time.perf_counter()
            run_cycles(m, 1)
            return time.perf_counter() - t0
    finally:
        close_migration(m)


def cp_both(work: Path, durable: bool = False) -> float:
    src = work / "lab/hosts/esx-a/datastores/datastore1/alice"
    out = work / "cp"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["cp", "--sparse=always", str(src / n), str(out / n)])
             for n in ("alice-flat.vmdk", "alice_1-flat.vmdk")]
    for p in procs:
        if p.wait():
            raise SystemExit("cp failed")
    if durable:  # vmigrate acknowledges only what is on stable storage: so must cp
        subprocess.run(["sync", *(str(f) for f in out.iterdir())], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="vmigrate-bench-par-"))
    try:
        lab_up(work / "lab", disk_sizes=[size, size], fill=1.0, power_on=False)
        methods: dict[str, Callable[[], float]] = {
            "cp --sparse=always, both disks side by side": lambda: cp_both(work),
            "cp --sparse=always + sync FILE (durable)": lambda: cp_both(work, durable=True),
            "vmigrate seed, parallel_disks=1": lambda: seed(work, 1),
            "vmigrate seed, parallel_disks=2": lambda: seed(work, 2),
        }
        best = {name: min(fn() for _ in range(args.runs)) for name, fn in methods.items()}
        print(f"# two {fmt_bytes(size)} disks, fully written, best of {args.runs}")
        ref = best["cp --sparse=always + sync FILE (durable)"]
        for name, secs in best.items():
            print(f"{name:46} {secs:6.2f} s  {2 * size / secs / 1e6:6.0f} MB/s  cp/x {ref / secs:4.2f}")
        print(f"parallel / sequential: {best['vmigrate seed, parallel_disks=1'] / best['vmigrate seed, parallel_disks=2']:.2f}x")
    finally:
        lab_down(work / "lab")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
