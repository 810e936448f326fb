#!/usr/bin/env python3
"""``vmigrate wave plan`` on a generated wave of 500 VMs, 10 host pairs, 1 and 10 Gbit/s.

The wave (seeded, so every run plans the same wave):

* 10 source hosts ``src0..9``, each paired with ``dst0..9``; VM ``i`` goes ``src(i%10)`` ->
  ``dst(i%10)``;
* disk size: log-normal, median 100 GiB (sigma 0.8), capped at 2 TiB;
* allocated: uniform 30-80 % of it (what the seed copies);
* dirty rate: log-normal, median 1 MB/s (sigma 1.2): most guests quiet, a tail of
  busy databases;
* groups: ``db`` (the first 100 VMs, window +0 to +8 h) before ``app`` (400 VMs, window
  +0 to +24 h); limits 40 in flight, 4 per source and per destination host;
* each pair's bandwidth: 1 Gbit/s (125 MB/s) or 10 Gbit/s (1.25 GB/s).

The plan runs as the command does with ``--no-preflight`` (a plan on paper: sizes and
rates from the file): the wave file read and checked (every VM through the params
schema), the schedule simulated, the table, ``plan.json`` and 10 Gantt PNGs written.
Timed: reading the file, planning, and the whole command.

    .venv/bin/python bench/bench_wave_plan.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmigrate_lib.wave.planning import make_plan  # noqa: E402
from vmigrate_lib.wave.spec import load_wave  # noqa: E402

N, PAIRS, GIB = 500, 10, 1 << 30


def wave(link: str, folder: Path, seed: int = 15) -> Path:
    rng = random.Random(seed)
    vms: list[dict[str, Any]] = []
    for i in range(N):
        size = min(int(rng.lognormvariate(0, 0.8) * 100 * GIB) // 4096 * 4096, 2048 * GIB)
        vms.append({"name": f"vm{i:03d}", "source": f"src{i % PAIRS}",
                    "destination": f"dst{i % PAIRS}", "group": "db" if i < 100 else "app",
                    "disks": [size], "allocated": int(size * rng.uniform(0.3, 0.8)),
                    "dirty_rate": int(rng.lognormvariate(0, 1.2) * 1e6)})
    data = {
        "wave": f"bench-{link.replace('/', '')}", "workspaces": str(folder / "ws"),
        "template": {"change_id": "CHG-BENCH", "operator": "bench", "hosts": "lab",
                     "downtime_budget": "5m",
                     "source": {"type": "lab", "lab_root": str(folder / "lab")},
                     "destination": {"type": "lab", "lab_root": str(folder / "lab")},
                     "cutover": {"expected_shutdown": "30s", "expected_boot": "60s"}},
        "estimate": {"interval": "5m", "cycle_overhead": "10s"},
        "groups": [{"name": "db", "window": {"start": "+0s", "end": "+8h"}},
                   {"name": "app", "after": ["db"], "window": {"start": "+0s", "end": "+24h"}}],
        "limits": {"in_flight": 40, "per_source_host": 4, "per_destination_host": 4,
                   "bandwidth": {"default": link}},
        "vms": vms,
    }
    path = folder / f"wave-{link.replace('/', '')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def one(link: str, folder: Path) -> dict[str, Any]:
    path = wave(link, folder)
    t0 = time.perf_counter()
    spec = load_wave(path)
    t1 = time.perf_counter()
    res = make_plan(spec, start_at=0.0, preflight=False)
    t2 = time.perf_counter()
    out = folder / f"plan-{link.replace('/', '')}"
    cmd = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "wave", "plan",
                          str(path), "--no-preflight", "--out", str(out)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    t3 = time.perf_counter()
    verdicts = Counter(s.verdict for s in res.schedule.slots)
    return {"link": link, "vms": N, "pairs": PAIRS, "read_s": round(t1 - t0, 3),
            "plan_s": round(t2 - t1, 3), "command_s": round(t3 - t2, 2),
            "makespan_h": round(res.schedule.makespan / 3600, 2), "verdicts": dict(verdicts),
            "gantt": sorted(p.name for p in out.glob("gantt-*.png"))[:1],
            "out": str(out), "last_line": cmd.stdout.strip().splitlines()[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="keep the waves and plans here")
    args = ap.parse_args()
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="wave-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = [one(link, folder) for link in ("1Gbit/s", "10Gbit/s")]
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
