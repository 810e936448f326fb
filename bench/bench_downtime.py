"""Predicted vs measured cutover downtime in the lab, at 1, 5 and 20 MB/s of guest writes.

For each workload, on a fresh lab: seed and two delta cycles; a rehearsal
cutover (forced: shutdown and boot are not measured yet) that is rolled back,
which journals the measured shutdown and boot times; a hash-compare cycle (Bob
ran, so his copy is re-proven) and shrinking deltas again; then the real cutover, whose
go/no-go prediction is compared with the downtime it measured.  Target: +-25%.

    .venv/bin/python bench/bench_downtime.py [--rates 1,5,20] [--disk-mib 256]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repo root: vmigrate_lib and tests.labkit

from tests.labkit import alice_on_a  # noqa: E402
from vmigrate_lib import params as params_mod  # noqa: E402
from vmigrate_lib.engine.cutover import CutoverOptions, run_cutover, run_rollback  # noqa: E402
from vmigrate_lib.engine.cycle import run_cycle  # noqa: E402
from vmigrate_lib.engine.sync import run_cycles  # noqa: E402
from vmigrate_lib.lab.workload import WorkloadSpec  # noqa: E402
from vmigrate_lib.session import close_migration, open_migration  # noqa: E402

MiB = 1 << 20


def shrink(m: Any, interval: float) -> None:
    """Delta cycles at shrinking pauses, as the planner advises (varied intervals)."""
    run_cycles(m, 1)
    for pause in (interval, interval / 2, interval / 4):
        time.sleep(pause)
        run_cycle(m)


def one(rate: float, base: Path, disk_mib: int, interval: float) -> dict[str, Any]:
    with alice_on_a(base / "lab", (disk_mib * MiB, disk_mib * MiB // 2),
                    WorkloadSpec(rate_mb_s=rate, ack_interval=0.5), fill=0.15,
                    ready_timeout=60, down_timeout=10) as root:
        p = params_mod.validate({
            "vm": "alice", "dest_name": "bob", "downtime_budget": "60s", "operator": "bench",
            "source": {"type": "lab", "host": "esx-a", "lab_root": str(root)},
            "destination": {"type": "lab", "host": "esx-b", "lab_root": str(root)},
            "workspace": str(base / "ws"),
            # no whole-disk certify cycle before the cutover (the cutover's own rule, as in
            # bench_planner): its extra cycle would move the window this bench measures
            "cutover": {"full_certify_within": 0},
        })
        m = open_migration(p)
        try:
            with m.workspace:
                shrink(m, interval)
                rehearsal = run_cutover(m, CutoverOptions(force=True))
                run_rollback(m, confirm_data_loss=True)
                shrink(m, interval)
                res = run_cutover(m, CutoverOptions())
                if res.record is None or res.record.prediction is None:
                    raise SystemExit(f"cutover {res.status}: no prediction recorded")
                pred = res.record.prediction
                final = res.record.final_cycle or {}
                fin = [c for c in m.workspace.journal.records("cycle")
                       if c["kind"] == "final"][-1]
        finally:
            close_migration(m)
    meas = res.parts
    dt = res.downtime or 0.0
    return {
        "rate MB/s": rate,
        "dirty MB/s": pred["dirty_rate"] / 1e6,
        "thr MB/s": pred["throughput"] / 1e6,
        "final MiB pred": pred["final_bytes"] / MiB,
        "final MiB real": (final.get("bytes_changed") or 0) / MiB,
        "window p/m": f"{pred['window']:.2f}/{fin.get('interval') or 0:.2f}",
        "rehearsal s": rehearsal.downtime or 0.0,
        "pred s": pred["predicted_downtime"],
        "meas s": dt,
        "shutdown p/m": f"{pred['shutdown']:.2f}/{meas.get('shutdown_s', 0):.2f}",
        "copy p/m": f"{pred['final_copy']:.2f}/{meas.get('final_copy_s', 0):.2f}",
        "boot p/m": f"{pred['boot']:.2f}/{meas.get('boot_s', 0):.2f}",
        "error %": 100.0 * (pred["predicted_downtime"] - dt) / dt if dt else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1,5,20")
    ap.add_argument("--disk-mib", type=int, default=256)
    ap.add_argument("--interval", type=float, default=2.0, help="pause between cycles, s")
    ap.add_argument("--tolerance", type=float, default=25.0, help="target, percent")
    args = ap.parse_args(argv)
    rows = []
    for rate in (float(x) for x in args.rates.split(",")):
        base = Path(tempfile.mkdtemp(prefix=f"vmigrate-bench-{rate:g}-"))
        t0 = time.monotonic()
        try:
            rows.append(one(rate, base, args.disk_mib, args.interval))
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print(f"  {rate:g} MB/s done in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    cols = list(rows[0])
    cells = [[f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))
    ok = all(abs(r["error %"]) <= args.tolerance for r in rows)
    print(f"within +-{args.tolerance:g}%: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
