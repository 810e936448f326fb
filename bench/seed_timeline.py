#!/usr/bin/env python3
"""Where a seed command's wall time goes: its steps beside the link's bytes and the CPU.

One ``vmigrate sync --cycles 1`` (as ``bench/bench_seed.py`` runs it: a lab VM whose disk
is one of its images, hosts a and b behind shaped links) run through
``bench/seed_marks.py`` (a timestamp at each step's start and end), while this process
samples every 10 ms the bytes b's link received (the root-side veth's ``tx_bytes``) and a's
link sent, and every 100 ms the CPU time of every process (``/proc/<pid>/stat``) grouped by
namespace and kind (agent, sshd, ssh, this machine's CLI).  It prints:

* the steps, in seconds from the command's spawn;
* the link: when the copy's bytes moved at the link (50 ms bins above half the link's
  rate), the idle time before the first and after the last such bin, idle bins between;
* the CPU seconds of each group.

``--before DIR``: a checkout (e.g. ``git worktree add /tmp/before HEAD~3``) whose
vmigrate_lib runs instead (PYTHONPATH).  Run as root::

    .venv/bin/python bench/seed_timeline.py --image random --mode direct --compress auto
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_seed  # noqa: E402
import seed_images  # noqa: E402

from tests.peers.hostpair import ESXI_SHELL  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SPY = os.environ.get("PY_SPY", "py-spy")  #: ``--spy``: py-spy (pip install py-spy)
BIN = 0.05


class Sampler:
    """The link's byte counters (10 ms) and every process's CPU time (100 ms)."""

    def __init__(self, root_if: dict[str, str], netns: dict[str, str],
                 spy: Path | None = None) -> None:
        self.spy = spy  #: py-spy each agent into this folder (collapsed stacks)
        self.spies: list[subprocess.Popen[bytes]] = []
        self.files = {"b_in": f"/sys/class/net/{root_if['b']}/statistics/tx_bytes",
                      "a_out": f"/sys/class/net/{root_if['a']}/statistics/rx_bytes"}
        self.ns_inode = {f"net:[{os.stat(f'/run/netns/{ns}').st_ino}]": role
                         for role, ns in netns.items()}
        self.link: list[tuple[float, int, int]] = []
        self.cpu: dict[int, tuple[str, float]] = {}  #: pid: group, CPU seconds since seen
        self.base: dict[int, float] = {}  #: CPU seconds of a pid when first seen
        self.seen = False  #: the first walk is done (pids found later are new)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._link, daemon=True),
                        threading.Thread(target=self._procs, daemon=True)]

    def __enter__(self) -> Sampler:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        for p in self.spies:  # each ends with its agent and writes its stacks
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.terminate()

    def _link(self) -> None:
        while not self.stop.is_set():
            vals = [int(Path(f).read_text()) for f in self.files.values()]
            self.link.append((time.time(), vals[0], vals[1]))
            time.sleep(0.01)

    def _procs(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            for d in os.listdir("/proc"):
                if not d.isdigit() or int(d) == me:
                    continue
                try:
                    st = Path(f"/proc/{d}/stat").read_text()
                    secs = sum(int(x) for x in st.rsplit(")", 1)[1].split()[11:13]) / TICK
                    pid = int(d)
                    if pid not in self.base:  # started before: count from now
                        self.base[pid] = 0.0 if self.seen else secs
                    if secs == self.base[pid]:
                        continue
                    group = self.cpu.get(pid, ("", 0.0))[0]
                    if not group.endswith(("agent", "cli")):  # a shell may exec python yet
                        group = self._group(d, st)
                    if (self.spy is not None and group in ("a:agent", "b:agent")
                            and self.cpu.get(pid, ("", 0.0))[0] != group):
                        self._spy_on(d, group)
                except (OSError, ValueError, IndexError):
                    continue
                self.cpu[pid] = (group, secs - self.base[pid])
            self.seen = True
            time.sleep(0.1)

    def _spy_on(self, pid: str, group: str) -> None:
        """py-spy the agent ``pid``; a missing py-spy is said once and sampling goes on
        (before, its OSError dropped the agents from the CPU table without a word)."""
        assert self.spy is not None
        try:
            self.spies.append(subprocess.Popen(
                [SPY, "record", "-p", pid, "-r", "100", "--nonblocking", "-f", "raw",
                 "-o", str(self.spy / f"{group.replace(':', '-')}-{pid}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        except OSError as exc:
            print(f"--spy: cannot run {SPY} ({exc}); set PY_SPY to its path", file=sys.stderr)
            self.spy = None

    def _group(self, pid: str, stat: str) -> str:
        role = self.ns_inode.get(_ns_inode(f"/proc/{pid}/ns/net"), "local")
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        kind = ("agent" if "python" in comm and ("vmigrate" in cmd or "agent" in cmd)
                else "cli" if "seed_marks" in cmd else comm)
        return f"{role}:{kind}"


def _ns_inode(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def analyse(marks: list[tuple[float, str]], link: list[tuple[float, int, int]], t0: float,
            t_end: float, rate: float) -> dict[str, Any]:
    """The steps from spawn, and when the link carried the copy."""
    steps = [(round(t - t0, 3), m) for t, m in marks if not m.startswith("summary")]
    bins: dict[int, int] = defaultdict(int)
    for (_ta, ba, _), (tb, bb, _) in itertools.pairwise(link):
        bins[int((tb - t0) / BIN)] += bb - ba
    n_end = int((t_end - t0) / BIN) + 1
    busy = [i for i in range(n_end) if bins.get(i, 0) >= rate * BIN / 2]
    out: dict[str, Any] = {"steps": steps, "wall": round(t_end - t0, 3),
                           "summaries": [m.split(" ", 2)[1:] for _, m in marks
                                         if m.startswith("summary")],
                           "bytes_in_b": sum(bins.values())}
    if busy:
        first, last = busy[0], busy[-1]
        idle = [i for i in range(first, last + 1) if bins.get(i, 0) < rate * BIN / 2]
        out.update(first_busy=round(first * BIN, 3), last_busy=round((last + 1) * BIN, 3),
                   idle_inside=round(len(idle) * BIN, 3), busy_bins=len(busy),
                   ramp=[round(bins.get(i, 0) / BIN / 1e6) for i in range(first - 2, first + 6)],
                   tail=[round(bins.get(i, 0) / BIN / 1e6) for i in range(last - 5, last + 3)],
                   idle_runs=_runs(idle))
    return out


def _runs(idle: list[int]) -> list[tuple[float, float]]:
    """Runs of idle bins (start s, length s) longer than one bin."""
    runs: list[tuple[float, float]] = []
    for i in idle:
        if runs and abs(runs[-1][0] + runs[-1][1] - i * BIN) < 1e-6:
            runs[-1] = (runs[-1][0], runs[-1][1] + BIN)
        else:
            runs.append((i * BIN, BIN))
    return [(round(s, 2), round(n, 2)) for s, n in runs if n > BIN]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="random", help="share, libmix, random, zeros")
    ap.add_argument("--quick", action="store_true", help="the 256 MiB images")
    ap.add_argument("--mode", default="direct", choices=("relay", "direct"))
    ap.add_argument("--compress", default="auto", help="'' (off) or auto")
    ap.add_argument("--link", default="1gbit", choices=sorted(bench_seed.RATES))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--before", type=Path, help="a checkout whose vmigrate_lib runs instead")
    ap.add_argument("--images", type=Path, default=Path("/tmp/vmigrate-bench-seed-images"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--esxi-shell", action="store_true",
                    help="sessions run no shell rc file (bench_seed.py --esxi-shell)")
    ap.add_argument("--spy", type=Path, help="py-spy every agent into this folder "
                    "(collapsed stacks; $PY_SPY names the binary)")
    args = ap.parse_args()
    compress = "" if args.compress in ("", "off") else args.compress
    imgs = seed_images.build_images(args.images, args.quick, small=(args.link == "100mbit"))
    img = imgs[args.image]
    if args.before is not None:
        os.environ["PYTHONPATH"] = str(args.before.resolve())
    work = Path(tempfile.mkdtemp(prefix="vmg-seed-timeline-"))
    os.chmod(work, 0o755)
    results = []
    with bench_seed.shaped_hosts(work, args.link,
                                 ESXI_SHELL if args.esxi_shell else ()) as h:
        root_if = {r: v[1] for r, v in h.links.items()}
        netns = {r: v[0] for r, v in h.links.items()}
        for run in range(args.runs):
            marks_file = work / f"marks-{run}.txt"
            load = Path("/proc/loadavg").read_text().split()[:3]
            if args.spy is not None:
                args.spy.mkdir(parents=True, exist_ok=True)
            with Sampler(root_if, netns, args.spy) as smp:
                times: dict[str, float] = {}
                _secs, bob, cyc = bench_seed.vmigrate_seed(
                    h, img, work, args.mode, compress,
                    runner=(str(HERE / "seed_marks.py"), str(marks_file)), times=times)
                t0, t_end = times["spawn"], times["exit"]
            marks = [(float(a), b) for a, b in
                     (x.split(" ", 1) for x in marks_file.read_text().splitlines())]
            res = analyse(marks, smp.link, t0, t_end, bench_seed.RATES[args.link])
            cpu: dict[str, float] = defaultdict(float)
            for group, s in smp.cpu.values():
                cpu[group] += s
            same = subprocess.run(["cmp", "-s", str(img), str(bob)]).returncode == 0
            res.update(load=load, identical=same, cycle_phases=cyc.get("phases"), cycle_s=cyc.get("duration"),
                       codec=cyc["disks"][0].get("codec"), wire=cyc.get("bytes_wire"),
                       cpu={k: round(v, 2) for k, v in sorted(cpu.items()) if v >= 0.02})
            results.append(res)
            _print(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _print(res: dict[str, Any]) -> None:
    print(f"wall {res['wall']} s, cycle {res.get('cycle_s', 0):.2f} s, load {' '.join(res['load'])}, "
          f"codec {res.get('codec')}, wire {res.get('wire', 0) / 2**20:.0f} MiB")
    print("  steps: " + "  ".join(f"{t:.3f} {m}" for t, m in res["steps"]))
    if "first_busy" in res:
        print(f"  link busy {res['first_busy']:.2f} .. {res['last_busy']:.2f} s "
              f"({res['busy_bins']} bins), idle inside {res['idle_inside']:.2f} s, "
              f"runs {res['idle_runs']}")
        print(f"  ramp MB/s {res['ramp']}  tail MB/s {res['tail']}")
    for op, summary in res["summaries"]:
        if op in ("push", "read"):
            print(f"  {op} summary {summary}")
    print(f"  cpu s: {res['cpu']}; copy {'identical' if res['identical'] else 'DIFFERENT'}")


if __name__ == "__main__":
    raise SystemExit(main())
