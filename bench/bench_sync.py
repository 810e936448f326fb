#!/usr/bin/env python3
"""Benchmark: one sync cycle of a 2 GiB disk with 1% changed, side by side with rsync.

    .venv/bin/python bench/bench_sync.py [--size 2GiB] [--big 64GiB] [--keep]

Builds a lab VM with a fully written disk, seeds it to the second host, saves
the destination's state, then writes 1% of the disk in scattered 64 KiB blocks
(through the lab, so change tracking sees them).  From the same two files it
runs, each in a fresh process so that peak RSS is its own:

* a tracked cycle (CBT extents only),
* a hash-compare cycle (block digests on both sides, differing blocks copied),
* ``rsync --inplace --no-whole-file`` between the same two files,
* a whole-disk certify (both sides hashed from the page cache),
* and, on a 64 GiB sparse disk, a seed + hash-compare + certify for peak RSS.

It prints a table with wall time, bytes read and written, peak RSS and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vmigrate_lib.lab.lifecycle import lab_down, lab_up  # noqa: E402
from vmigrate_lib.lab.machine import VmMachine  # noqa: E402
from vmigrate_lib.params import validate  # noqa: E402
from vmigrate_lib.units import fmt_bytes, parse_size  # noqa: E402

GRAIN = 64 * 1024


def params(work: Path, vm: str, **sync: Any) -> Any:
    return validate({
        "vm": vm,
        "workspace": str(work / f"ws-{vm}"),
        "source": {"type": "lab", "host": "esx-a", "lab_root": str(work / "lab")},
        "destination": {"type": "lab", "host": "esx-b", "lab_root": str(work / "lab")},
        "sync": {"checkpoint_bytes": "256MiB", **sync},
    })


def run_cycle_here(work: Path, vm: str, sync: dict[str, Any], certify_only: bool) -> dict[str, Any]:
    """Child process: one cycle (or a full certify), with its own peak RSS."""
    from vmigrate_lib.engine.cycle import run_cycle
    from vmigrate_lib.engine.sync import start
    from vmigrate_lib.session import close_migration, open_migration

    t_run = time.perf_counter()
    m = open_migration(params(work, vm, **sync))
    try:
        with m.workspace:
            start(m)  # preflight: connects both hosts and starts the agents
            t0 = time.perf_counter()
            out = run_cycle(m, certify="full" if certify_only else None)
            wall = time.perf_counter() - t0
    finally:
        close_migration(m)
    run_wall = time.perf_counter() - t_run
    rec = out.record
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    cert = {k: v.summary() for k, v in out.certify.items()}
    return {
        "wall": wall, "run_wall": run_wall, "bytes_changed": rec["bytes_changed"], "bytes_read": rec["bytes_read"],
        "bytes_written": rec["bytes_sent"] + rec["bytes_zero"], "bytes_sent": rec["bytes_sent"],
        "rss_engine": self_rss, "rss_agent": child_rss, "phases": rec["phases"],
        "modes": [d["mode"] for d in rec["disks"]], "certify": cert,
    }


def child(work: Path, vm: str, sync: dict[str, Any], certify_only: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(work), vm, json.dumps(sync),
         "1" if certify_only else "0"],
        capture_output=True, text=True, check=False,
    )
    process_wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"benchmark child failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall"] = process_wall
    return result


def rsync(src: Path, dst: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run(
        # --ignore-times: the two files can share size and mtime (same second), and rsync's
        # quick check would then skip the copy and "win" by doing nothing.
        ["/usr/bin/time", "-f", "MAXRSS %M", "rsync", "--inplace", "--no-whole-file", "--ignore-times",
         "--stats", str(src), str(dst)],
        capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - t0
    literal = int(re.search(r"Literal data: ([\d,]+)", out.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    rss = int(re.search(r"MAXRSS (\d+)", out.stderr).group(1)) * 1024  # type: ignore[union-attr]
    size = src.stat().st_size
    return {"wall": wall, "bytes_read": 2 * size, "bytes_written": literal, "bytes_sent": literal,
            "rss": rss}


def same(a: Path, b: Path) -> bool:
    """Chunked compare: the parent's RSS must stay small (Linux counts it into a
    spawned child's ru_maxrss through vfork + exec)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(8 << 20), fb.read(8 << 20)
            if x != y:
                return False
            if not x:
                return True


def hash_both(tool: str, a: Path, b: Path) -> float:
    """What a sysadmin would do to certify: a coreutils hash of both files, in parallel."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([tool, str(p)], stdout=subprocess.PIPE) for p in (a, b)]
    outs = [p.communicate()[0].split()[0] for p in procs]
    wall = time.perf_counter() - t0
    assert outs[0] == outs[1], f"{tool}: the copies differ"
    return wall


def make_changes(vmdir_cfg: Path, fraction: float, seed: int = 7) -> int:
    """Write ``fraction`` of the disk in scattered 64 KiB blocks, through the lab (CBT sees it)."""
    machine = VmMachine.open(vmdir_cfg)
    try:
        disk = machine.disks[0]
        grains = disk.capacity // GRAIN
        rng = random.Random(seed)
        picks = rng.sample(range(grains), int(grains * fraction))
        for g in picks:
            disk.write(g * GRAIN, rng.randbytes(GRAIN))
        machine.fsync()
    finally:
        machine.close()
    return len(picks) * GRAIN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="2GiB")
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--big", default="64GiB", help="sparse disk for the RSS check ('0' skips)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        work, vm, sync, cert = args.child
        print(json.dumps(run_cycle_here(Path(work), vm, json.loads(sync), cert == "1")))
        return

    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="vmigrate-bench-", dir=os.environ.get("BENCH_DIR")))
    lab = work / "lab"
    try:
        print(f"# bench_sync: {fmt_bytes(size)} disk, {args.change:.0%} changed in 64 KiB blocks")
        t0 = time.perf_counter()
        lab_up(lab, disk_sizes=[size], fill=1.0, power_on=False)
        print(f"lab built in {time.perf_counter() - t0:.1f} s")
        a_disk = lab / "hosts/esx-a/datastores/datastore1/alice/alice-flat.vmdk"
        b_disk = lab / "hosts/esx-b/datastores/datastore1/alice/alice-flat.vmdk"
        seed = child(work, "alice", {"certify": "none"})
        print(f"seed: {seed['wall']:.1f} s, {fmt_bytes(seed['bytes_changed'])}")
        before = work / "before.img"
        shutil.copyfile(b_disk, before)
        changed = make_changes(a_disk.parent / "alice.vmx.json", args.change)
        rsync_dst = work / "rsync-dst.img"
        shutil.copyfile(before, rsync_dst)

        rows: list[tuple[str, dict[str, Any]]] = []
        tracked = child(work, "alice", {"certify": "none"})
        assert tracked["modes"] == ["tracked"], tracked["modes"]
        assert same(a_disk, b_disk), "tracked cycle result differs"
        rows.append(("vmigrate tracked cycle", tracked))
        shutil.copyfile(before, b_disk)  # the same starting point for the hash-compare cycle
        hashed = child(work, "alice", {"certify": "none", "change_tracking": "hash"})
        assert hashed["modes"] == ["hash"], hashed["modes"]
        assert same(a_disk, b_disk), "hash cycle result differs"
        rows.append(("vmigrate hash-compare cycle", hashed))
        rs = rsync(a_disk, rsync_dst)
        assert same(a_disk, rsync_dst), "rsync result differs"
        rows.append(("rsync --inplace --no-whole-file", {**rs, "rss_engine": rs["rss"], "rss_agent": 0}))
        cert = child(work, "alice", {"certify": "full"}, certify_only=True)
        cert_secs = cert["phases"]["certify"]
        rows.append(("vmigrate certify (whole disk)", cert))
        coreutils = {tool: hash_both(tool, a_disk, b_disk) for tool in ("sha256sum", "b2sum", "md5sum")}

        print(f"\nchanged bytes: {fmt_bytes(changed)}\n")
        print(f"{'run':34} {'wall s':>8} {'read':>11} {'written':>11} {'peak RSS':>10} {'rsync/x':>8}")
        for name, r in rows:
            rss = max(r.get("rss_engine", 0), r.get("rss_agent", 0))
            ratio = rs["wall"] / r["wall"] if r["wall"] else 0
            print(f"{name:34} {r['wall']:8.2f} {fmt_bytes(r['bytes_read']):>11} "
                  f"{fmt_bytes(r['bytes_written']):>11} {fmt_bytes(rss):>10} {ratio:7.1f}x")
        print()
        for name, r in rows:
            if "phases" in r:
                print(f"  {name}: " + ", ".join(f"{k} {v:.3f}s" for k, v in r["phases"].items()))
        # the operator's view: one `vmigrate sync --cycles 1` command, fresh process and all
        import yaml

        pfile = work / "params.yaml"
        pfile.write_text(yaml.safe_dump(params(work, "alice", certify="none").to_dict()))
        make_changes(a_disk.parent / "alice.vmx.json", args.change, seed=11)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "-q", "sync", "-p",
                        str(pfile), "--cycles", "1"], check=True, capture_output=True)
        cli_wall = time.perf_counter() - t0
        print(f"\n`vmigrate sync --cycles 1` (tracked, 1% changed), whole command: {cli_wall:.2f} s "
              f"(interpreter, imports, preflight, agents, cycle, clean-up); rsync/x {rs['wall'] / cli_wall:.1f}x")
        print(f"tracked: read {tracked['bytes_read'] / changed:.2f}x and wrote "
              f"{tracked['bytes_written'] / changed:.2f}x the changed bytes; "
              f"{rs['wall'] / tracked['wall']:.1f}x faster than rsync (target >= 10x, <= 1.1x)")
        print(f"hash-compare: {rs['wall'] / hashed['wall']:.1f}x faster than rsync (target >= 2x); "
              f"hash phase {hashed['phases'].get('hash', 0):.2f} s")
        print(f"certify: {size / cert_secs / 1e9:.2f} GB/s per side "
              f"({fmt_bytes(size)} on each side in {cert_secs:.2f} s; target >= 1 GB/s); "
              + ", ".join(f"{tool} of both files in parallel {secs:.2f} s "
                          f"({secs / cert_secs:.1f}x slower)" for tool, secs in coreutils.items()))

        if args.big != "0":
            big = parse_size(args.big)
            from vmigrate_lib.lab.layout import LabLayout
            from vmigrate_lib.lab.lifecycle import create_vm

            create_vm(LabLayout(lab), "esx-a", "datastore1", "big", [big], fill=0.001)
            s = child(work, "big", {"certify": "full"})
            h = child(work, "big", {"certify": "full", "change_tracking": "hash"})
            peak = max(s["rss_engine"], s["rss_agent"], h["rss_engine"], h["rss_agent"])
            print(f"{fmt_bytes(big)} sparse disk: seed+certify {s['wall']:.1f} s, "
                  f"hash-compare+certify {h['wall']:.1f} s, peak RSS {fmt_bytes(peak)} "
                  f"(engine {fmt_bytes(max(s['rss_engine'], h['rss_engine']))}, "
                  f"agent {fmt_bytes(max(s['rss_agent'], h['rss_agent']))}; target < 300 MB)")
    finally:
        lab_down(lab)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
