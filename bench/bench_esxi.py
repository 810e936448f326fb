#!/usr/bin/env python3
"""Benchmark (issue 12 item 6): change tracking without CBT, side by side with rsync.

    .venv/bin/python bench/bench_esxi.py [--size 512MiB] [--change 0.01]

On lab VMs (disk fully written, guest off so the changes are exactly known), after
a seed, ``--change`` of the disk is written in scattered 64 KiB blocks, then:

* a ``snapshot-delta`` cycle: the seed kept its snapshot, the writes went to its
  SEsparse delta, the cycle reads that delta's grain table and copies those grains
  (target: read and sent <= 1.1x the changed bytes, like a tracked cycle);
* ``hash`` cycles: the first after the seed digests both sides (today's hash-compare:
  no destination digests remembered), the next reads only the source (remembered
  digests; target: >= 1.8x faster);
* ``rsync --inplace --no-whole-file --ignore-times`` of the same file onto a copy
  of the destination before the changes.

Every result is checked identical to the source.  The load average is printed:
the machine is shared.  The lab's agents are local processes; on ESXi the source
agent runs on the host's python3 and the data crosses SSH (bench_ssh.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sync import make_changes, rsync, same  # noqa: E402

from vmigrate_lib.engine.cycle import run_cycle  # noqa: E402
from vmigrate_lib.engine.sync import start  # noqa: E402
from vmigrate_lib.lab.lifecycle import lab_down, lab_up  # noqa: E402
from vmigrate_lib.params import validate  # noqa: E402
from vmigrate_lib.session import close_migration, open_migration  # noqa: E402
from vmigrate_lib.units import fmt_bytes, parse_size  # noqa: E402

A_DISK = "hosts/esx-a/datastores/datastore1/alice/alice-flat.vmdk"
B_DISK = "hosts/esx-b/datastores/datastore1/alice/alice-flat.vmdk"


def cycles(lab: Path, mode: str, change: float, rounds: int,
           before: Path | None = None) -> list[dict[str, Any]]:
    """Seed (the destination then copied to ``before``), then ``rounds`` times: write
    the changes, run one cycle (timed)."""
    m = open_migration(validate({
        "vm": "alice", "workspace": str(lab.parent / f"ws-{mode}"),
        "source": {"type": "lab", "host": "esx-a", "lab_root": str(lab)},
        "destination": {"type": "lab", "host": "esx-b", "lab_root": str(lab)},
        "sync": {"checkpoint_bytes": "256MiB", "change_tracking": mode, "certify": "none"},
    }))
    out = []
    try:
        with m.workspace:
            start(m)
            run_cycle(m)
            if before is not None:
                shutil.copyfile(lab / B_DISK, before)
            for r in range(rounds):
                written = make_changes(lab / A_DISK.replace("alice-flat.vmdk", "alice.vmx.json"),
                                       change, seed=11 + r)
                t0 = time.perf_counter()
                rec = run_cycle(m).record
                out.append({"wall": time.perf_counter() - t0, "written": written,
                            "read": rec["bytes_read"], "sent": rec["bytes_sent"] + rec["bytes_zero"],
                            "reasons": [d["reason"] for d in rec["disks"]]})
    finally:
        close_migration(m)
    assert same(lab / A_DISK, lab / B_DISK), f"{mode}: the copy differs"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="512MiB")
    ap.add_argument("--change", type=float, default=0.01)
    args = ap.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="vmigrate-bench-esxi-", dir=os.environ.get("BENCH_DIR")))
    print(f"# bench_esxi: {fmt_bytes(size)} disk, {args.change:.0%} changed in 64 KiB blocks; "
          f"load average before {os.getloadavg()[0]:.2f}")
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        sd_lab, h_lab = work / "lab-sd", work / "lab-hash"
        for lab in (sd_lab, h_lab):
            lab_up(lab, disk_sizes=[size], fill=1.0, power_on=False)
        before = work / "rsync-dst.img"
        sd = cycles(sd_lab, "snapshot-delta", args.change, 1, before)[0]
        assert all("snapshot-delta: grains of" in r for r in sd["reasons"]), sd["reasons"]
        rows.append(("snapshot-delta cycle", sd))
        today, remembered = cycles(h_lab, "hash", args.change, 2)
        assert "remembered digests" in remembered["reasons"][0], remembered["reasons"]
        rows.append(("hash cycle, both sides digested", today))
        rows.append(("hash cycle, remembered digests", remembered))
        rs = rsync(sd_lab / A_DISK, work / "rsync-dst.img")
        assert same(sd_lab / A_DISK, work / "rsync-dst.img"), "rsync result differs"
        rows.append(("rsync --inplace --no-whole-file", {**rs, "read": rs["bytes_read"],
                                                           "sent": rs["bytes_sent"],
                                                           "written": sd["written"]}))
        print(f"{'run':34} {'wall s':>8} {'changed':>10} {'read':>10} {'sent':>10} {'read/chg':>8}")
        for name, r in rows:
            print(f"{name:34} {r['wall']:8.2f} {fmt_bytes(r['written']):>10} "
                  f"{fmt_bytes(r['read']):>10} {fmt_bytes(r['sent']):>10} "
                  f"{r['read'] / r['written']:8.2f}")
        print(f"snapshot-delta: read {sd['read'] / sd['written']:.2f}x, sent "
              f"{sd['sent'] / sd['written']:.2f}x the changed bytes (target <= 1.1x); "
              f"{rs['wall'] / sd['wall']:.1f}x faster than rsync")
        print(f"hash, remembered digests: {today['wall'] / remembered['wall']:.2f}x faster than "
              f"both sides digested (target >= 1.8x); source read {fmt_bytes(remembered['read'])}"
              f" of {fmt_bytes(size)}")
        print(f"load average after {os.getloadavg()[0]:.2f}")
    finally:
        for lab in (work / "lab-sd", work / "lab-hash"):
            if lab.exists():
                lab_down(lab)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
