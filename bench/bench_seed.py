#!/usr/bin/env python3
"""A seed at the link's speed on real disk content (issue 13 items 1, 2, 5): side by side.

Images are built at run time from this machine's own files:

* ``share``: ``truncate -s 1536M`` + ``mkfs.ext4 -d /usr/share`` (893 MB of files here;
  the free space stays a hole, as on a thin disk);
* ``libmix``: a copy of /usr/lib's x86_64-linux-gnu, gcc and python3.11 folders (~900 MB)
  in a 1536 MiB ext4 image;
* ``random``: 1 GiB of /dev/urandom;
* ``zeros``: 1 GiB written as zeros (allocated, not a hole) with 5% random blocks.

Hosts a and b are real sshd in network namespaces behind ``tc tbf`` links
(tests/peers/netns.py; this kernel has no netem, so no delay is added).  Per image and
link, each method copies a's image to b and is checked byte-identical (``cmp``):

* ``ssh a cat | ssh b 'cat >'``, ``ssh a zstd -1 | ssh b zstd -d``, ``rsync -z`` (run on
  a, to b), a busybox-only host (``busybox gzip -1`` / ``gunzip`` pipe, as on ESXi);
* the whole ``vmigrate sync --cycles 1`` (seed + its certify) on a lab VM whose disk is
  the image, relay and direct, ``ssh_compress`` off and auto.

MB/s is the image size over the wall time; with ``--rounds N`` every method runs N times
per image, in turn, and the report gives each method's median round and the range.  ``--quick``: a 256 MiB share image and
random, 1 Gbit/s only.  Run as root (namespaces)::

    .venv/bin/python bench/bench_seed.py [--quick] [--images DIR] [--links 1gbit,100mbit]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repo root: vmigrate_lib and the tests.peers package

from seed_images import build_images  # noqa: E402  (bench/, this script's folder)

from tests.peers import netns as peers_netns  # noqa: E402
from tests.peers.hostpair import ESXI_SHELL, namespace_pair  # noqa: E402
from tests.peers.sshd import SshHost  # noqa: E402
from vmigrate_lib.lab.layout import LabLayout  # noqa: E402
from vmigrate_lib.lab.lifecycle import create_vm, lab_down, lab_up  # noqa: E402

MiB = 1 << 20
RATES = {"1gbit": 125e6, "100mbit": 12.5e6}


@dataclass
class Hosts:
    a: SshHost
    b: SshHost
    a_to_b: SshHost  #: b as reached from a (peer key)
    peer_key: str
    known_hosts: str
    #: per role: the namespace and the root-side veth (its byte counters are the link's)
    links: dict[str, tuple[str, str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- hosts


@contextlib.contextmanager
def shaped_hosts(work: Path, rate: str, extra: tuple[str, ...] = ()) -> Iterator[Hosts]:
    """sshd for hosts a and b, each in a namespace behind a tbf link of ``rate`` (``extra``:
    sshd_config lines)."""
    with namespace_pair(work, rate, tag=f"-{rate}", extra_config=extra) as pair:
        yield Hosts(pair.a, pair.b, pair.a_to_b, pair.peer_key.path, pair.known_hosts,
                    {r: (k.netns, k.root_if) for r, k in pair.topology.links.items()})


# --------------------------------------------------------------------------- methods


def pipe(cmd: str) -> None:
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[:80]}... failed: {r.stderr.decode(errors='replace')[-400:]}")


def shell_methods(h: Hosts, img: Path, dst: Path) -> dict[str, Callable[[], None]]:
    a, b = h.a, h.b
    rsh = " ".join(["ssh", *h.a_to_b.ssh_options()])
    return {
        "ssh cat | ssh cat": lambda: pipe(
            f"{a.ssh_command('cat', str(img))} | {b.ssh_command('cat > ' + str(dst))}"),
        "ssh zstd -1 | ssh zstd -d": lambda: pipe(
            f"{a.ssh_command('zstd -1 -q -c ' + str(img))} | "
            f"{b.ssh_command('zstd -d -q -c > ' + str(dst))}"),
        "rsync -z (a->b)": lambda: pipe(a.ssh_command(
            f"rsync -z -e {shlex.quote(rsh)} {img} {b.user}@{b.ip}:{dst}")),
        "busybox gzip -1 pipe": lambda: pipe(
            f"{a.ssh_command('busybox gzip -1 -c ' + str(img))} | "
            f"{b.ssh_command('busybox gunzip -c > ' + str(dst))}"),
    }


def vmigrate_seed(h: Hosts, img: Path, work: Path, mode: str, compress: str,
                  runner: tuple[str, ...] = ("-m", "vmigrate_lib.faces.cli"),
                  python: str = sys.executable,
                  times: dict[str, float] | None = None,
                  env: dict[str, str] | None = None,
                  keeper: bool = False) -> tuple[float, Path, dict[str, Any]]:
    """The whole ``vmigrate sync --cycles 1`` on a fresh lab VM whose disk is ``img``:
    wall seconds, Bob's disk, and the cycle record (``runner``: how ``python`` runs the
    CLI; ``bench/seed_timeline.py`` runs it through ``bench/seed_marks.py``; ``times``
    gets the command's ``spawn`` and ``exit`` wall-clock times; ``env``: the command's
    environment, e.g. ``PYTHONPATH`` naming an older checkout for ``--before``; ``keeper``:
    ``vmigrate keep start`` before the command, untimed, as an operator runs it ahead of
    a sync's cycles (docs/keep.md), and ``keep stop`` after)."""
    base = work / f"lab-{mode}-{compress or 'off'}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    os.chmod(base, 0o755)
    root = base / "lab"
    lab_up(root, vm="", power_on=False)
    size = img.stat().st_size
    vmdir = create_vm(LabLayout(root), "esx-a", "datastore1", "alice", (size,), fill=0.0)
    flat = vmdir / "alice-flat.vmdk"
    flat.unlink()
    os.link(img, flat)  # the source is only read (a snapshot freezes it)

    def host(name: str, s: SshHost, **extra: Any) -> dict[str, Any]:
        return {"type": "lab", "host": name, "lab_root": str(root),
                "url": f"ssh://{s.user}@{s.ip}:{s.port}", "ssh_key": s.key_path,
                "ssh_known_hosts": s.known_hosts_path, **extra}

    src = host("esx-a", h.a, ssh_mode=mode, ssh_compress=compress)
    if mode == "direct":
        src.update(ssh_direct_key=h.peer_key, ssh_direct_known_hosts=h.known_hosts)
    params = base / "params.yaml"
    params.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "downtime_budget": "60s", "operator": "bench",
        "source": src, "destination": host("esx-b", h.b), "workspace": str(base / "ws")}))
    if keeper:
        run = base / "run"
        run.mkdir(mode=0o700)
        env = {**(env or os.environ), "XDG_RUNTIME_DIR": str(run)}
        k = subprocess.run([python, *runner, "keep", "start", "--for", "10m", "--params",
                            str(params)], capture_output=True, text=True, cwd=base, env=env)
        if k.returncode != 0:
            raise RuntimeError(f"keep start failed ({k.returncode}):\n{k.stdout + k.stderr}")
    t0, wall0 = time.perf_counter(), time.time()
    r = subprocess.run([python, *runner, "sync", "--cycles", "1",
                        "--params", str(params)], capture_output=True, text=True, cwd=base,
                       env=env)
    secs = time.perf_counter() - t0
    if keeper:
        subprocess.run([python, *runner, "keep", "stop"], capture_output=True, cwd=base,
                       env=env, check=False)
        if "keeper not used" in r.stderr or "warning" in r.stderr:
            raise RuntimeError(f"the keeper was not used:\n{r.stderr[-2000:]}")
    if times is not None:
        times.update(spawn=wall0, exit=wall0 + secs)
    if r.returncode != 0:
        raise RuntimeError(f"vmigrate sync failed ({r.returncode}):\n{(r.stdout + r.stderr)[-2000:]}")
    recs = [json.loads(x) for x in (base / "ws" / "journal.jsonl").read_text().splitlines() if x]
    cycle = [x for x in recs if x.get("type") == "cycle"][-1]
    bob = root / "hosts" / "esx-b" / "datastores" / "datastore1" / "bob" / "bob-flat.vmdk"
    if not bob.exists():
        bob = next((root / "hosts" / "esx-b").rglob("*-flat.vmdk"))
    lab_down(root, timeout=5)
    return secs, bob, cycle


def run_link(link: str, images: dict[str, Path], work: Path, methods: set[str],
             before: Path | None = None, rounds: int = 1,
             extra: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Every method on every image over ``link``, ``rounds`` times in turn (all methods on
    an image, then all again: the same minutes for each); with ``before`` (a checkout) each
    vmigrate method runs twice, that checkout's code (label `` (before)``) and this one,
    the first of the two alternating from round to round.  A method's entry is its median round, with every round's MB/s beside."""
    runs: list[tuple[str, dict[str, str] | None]] = [("", None)]
    if before is not None:
        runs.insert(0, (" (before)", {**os.environ, "PYTHONPATH": str(before.resolve())}))
    results: dict[str, dict[str, Any]] = {}
    with shaped_hosts(work, link, extra) as h:
        for (name, img), rnd in itertools.product(images.items(), range(rounds)):
            size = img.stat().st_size
            row: dict[str, Any] = results.setdefault(name, {})
            dst = work / "b-out.img"
            if rounds > 1:
                print(f"  {link:7s} {name:7s} round {rnd + 1}/{rounds}", flush=True)
            for label, fn in shell_methods(h, img, dst).items():
                if methods and label not in methods:
                    continue
                dst.unlink(missing_ok=True)
                t0, c0 = time.perf_counter(), cpu_busy()
                fn()
                secs, cpu = time.perf_counter() - t0, cpu_busy() - c0
                same = subprocess.run(["cmp", "-s", str(img), str(dst)]).returncode == 0
                _add(row, label, {"MB/s": size / secs / 1e6, "s": secs, "identical": same,
                                  "cpu_s": cpu})
                print(f"  {link:7s} {name:7s} {label:28s} {size / secs / 1e6:7.1f} MB/s "
                      f"{secs:6.1f} s cpu={cpu:.1f} s {'ok' if same else 'DIFFERENT'}",
                      flush=True)
            dst.unlink(missing_ok=True)
            # each round swaps which code runs first: with the same relay behaviour in
            # both checkouts (level 1, same wire), the one run second was 12-30% faster
            # in 6 rounds of 6 (2026-12-02, bench/README.md); the same code under both
            # labels still differed by up to 35% a round: compare medians of rounds
            order = runs if rnd % 2 == 0 else runs[::-1]
            for mode in ("relay", "direct"):
                for compress, (tag, env), kept in itertools.product(("", "auto"), order,
                                                                    (False, True)):
                    label = f"vmigrate {mode} {compress or 'off'}" + (" kept" if kept else "")
                    if (methods and label not in methods) or (kept and not methods):
                        continue  # kept runs are asked by name (--methods)
                    label += tag
                    c0 = cpu_busy()
                    secs, bob, cyc = vmigrate_seed(h, img, work, mode, compress, env=env,
                                                   keeper=kept)
                    cpu = cpu_busy() - c0
                    same = subprocess.run(["cmp", "-s", str(img), str(bob)]).returncode == 0
                    disk = cyc["disks"][0]
                    _add(row, label, {"MB/s": size / secs / 1e6, "s": secs, "identical": same,
                                      "cpu_s": cpu, "codec": disk.get("codec", ""),
                                      "wire": disk.get("bytes_wire", 0),
                                      "frames": [disk.get("frames_packed"), disk.get("frames_raw")],
                                      "packer": disk.get("packer", {}),
                                      "cycle_s": cyc.get("duration"), "phases": cyc.get("phases")})
                    print(f"  {link:7s} {name:7s} {label:28s} {size / secs / 1e6:7.1f} MB/s "
                          f"{secs:6.1f} s cpu={cpu:.1f} s {'ok' if same else 'DIFFERENT'} "
                          f"codec={disk.get('codec')} "
                          f"wire={disk.get('bytes_wire', 0) / MiB:.0f} MiB "
                          f"frames packed/raw={disk.get('frames_packed')}/{disk.get('frames_raw')} "
                          f"{_packer(disk.get('packer', {}))}cycle "
                          f"{cyc.get('duration', 0):.1f} s {_phases(cyc)}", flush=True)
                    shutil.rmtree(work / f"lab-{mode}-{compress or 'off'}", ignore_errors=True)
    return results


def _add(row: dict[str, Any], label: str, run: dict[str, Any]) -> None:
    """One more round of ``label``: its entry becomes the median round (by MB/s; the lower
    middle of an even count), ``rounds`` every round's MB/s, ``identical`` all of them."""
    runs = [*row.get(label, {}).get("runs", []), run]
    mid = sorted(runs, key=lambda r: r["MB/s"])[(len(runs) - 1) // 2]
    row[label] = {**mid, "runs": runs, "rounds": [round(r["MB/s"], 1) for r in runs],
                  "identical": all(r["identical"] for r in runs)}


def report(results: dict[str, dict[str, dict[str, Any]]], load: tuple[str, str]) -> None:
    print(f"\nload average before: {load[0]}; after: {load[1]}")
    for link, per_image in results.items():
        print(f"\n{link}: MB/s (image size / wall time), ratios against the targets")
        for name, row in per_image.items():
            zstd = row.get("ssh zstd -1 | ssh zstd -d", {}).get("MB/s")
            cat = row.get("ssh cat | ssh cat", {}).get("MB/s")
            line = " | ".join(f"{k} {v['MB/s']:.0f}" + _spread(v) + f" cpu {v['cpu_s']:.0f} s"
                              for k, v in row.items())
            print(f"  {name}: {line}")
            for before in (False, True):
                got = [(v["MB/s"], k) for k, v in row.items()
                       if k.startswith("vmigrate") and k.endswith("(before)") == before]
                if not got:
                    continue
                best = max(got)
                if name == "random" and cat:
                    print(f"    best vmigrate ({best[1]}) / ssh cat = {best[0] / cat:.2f} (target >= 0.95)")
                elif zstd:
                    print(f"    best vmigrate ({best[1]}) / zstd pipe = {best[0] / zstd:.2f} (target >= 1.1)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256 MiB images, 1 Gbit/s only")
    ap.add_argument("--links", default="1gbit,100mbit")
    ap.add_argument("--images", type=Path, default=Path("/tmp/vmigrate-bench-seed-images"),
                    help="where images are built and kept for the next run")
    ap.add_argument("--methods", default="", help="comma-separated labels (default: all but the kept ones, e.g. 'vmigrate direct auto kept': a keeper started ahead, docs/keep.md)")
    ap.add_argument("--only", default="", help="comma-separated image names (default: all)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--before", type=Path, help="a checkout (git worktree) whose vmigrate_lib "
                    "also runs each vmigrate method, just before this one's run")
    ap.add_argument("--rounds", type=int, default=1, help="run every method this many times "
                    "per image, in turn; the tables give each method's median (and range)")
    ap.add_argument("--esxi-shell", action="store_true", help=(
        "sessions run no shell rc file, as ESXi's busybox ash runs none for a command (sshd "
        "SetEnv SHLVL=1: bash skips ~/.bashrc, here root's pyenv init of ~0.2-0.45 s per exec; "
        "every method's sessions alike)"))
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    # a kill (timeout, pkill) unwinds as an exit does: the namespaces and sshd go with it
    # (the default SIGTERM left both behind)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    ok, why = peers_netns.available()
    if not ok:
        print(f"bench_seed needs network namespaces: {why}")
        return 2
    links = ["1gbit"] if args.quick else args.links.split(",")
    methods = {m.strip() for m in args.methods.split(",") if m.strip()}
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    work = Path(tempfile.mkdtemp(prefix="vmg-bench-seed-"))
    os.chmod(work, 0o755)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    link_loads: dict[str, list[list[str]]] = {}
    try:
        for link in links:
            # the 100 Mbit/s link gets the smaller images (a 1.5 GiB `ssh cat` alone is 2 min)
            imgs = build_images(args.images, args.quick, small=(link == "100mbit"))
            if args.only:
                imgs = {k: v for k, v in imgs.items() if k in args.only.split(",")}
            print(f"{link}: images " + ", ".join(f"{k} {p.stat().st_size / MiB:.0f} MiB "
                                                 f"({_allocated(p) / MiB:.0f} allocated)"
                                                 for k, p in imgs.items()), flush=True)
            before = Path("/proc/loadavg").read_text().split()[:3]
            results[link] = run_link(link, imgs, work, methods, args.before, args.rounds,
                                     ESXI_SHELL if args.esxi_shell else ())
            link_loads[link] = [before, Path("/proc/loadavg").read_text().split()[:3]]
            print(f"{link}: load average before {' '.join(before)}, after "
                  f"{' '.join(link_loads[link][1])}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    report(results, (" ".join(load0), " ".join(load1)))
    if args.json:
        args.json.write_text(json.dumps({"load": [load0, load1], "link_loads": link_loads,
                                         "esxi_shell": args.esxi_shell, "rounds": args.rounds,
                                         "results": results}, indent=1))
    bad = [(link, n, k) for link, r in results.items() for n, row in r.items()
           for k, v in row.items() if not v["identical"]]
    if bad:
        print(f"NOT IDENTICAL: {bad}")
        return 1
    return 0


def _spread(v: dict[str, Any]) -> str:
    """`` (min-max of N)`` where a method ran more than one round."""
    got = v.get("rounds", [])
    return f" ({min(got):.0f}-{max(got):.0f} of {len(got)})" if len(got) > 1 else ""


def _packer(p: dict[str, int]) -> str:
    """The packer's account: chunks that did not shrink / left as is for the codec's rate,
    zstd's top level, the longest joined frame."""
    if not p:
        return ""
    return (f"no_gain/off_for_rate={p.get('no_gain', 0)}/{p.get('off_for_rate', 0)} "
            f"level<={p.get('level_max', 0)} span<={p.get('span_max', 0) / MiB:.0f}MiB "
            f"ldm_off={p.get('ldm_off', 0)} stream={p.get('stream', 0)} ")


def _phases(cyc: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.1f}" for k, v in (cyc.get("phases") or {}).items()
                    if isinstance(v, (int, float)))


def cpu_busy() -> float:
    """This machine's busy CPU seconds so far (/proc/stat: user, nice, system, irq,
    softirq, steal of every core): over a method, what both hosts, their sshds and the
    client spent together (whatever else ran then too), beside its wall time."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _allocated(p: Path) -> int:
    return p.stat().st_blocks * 512


if __name__ == "__main__":
    raise SystemExit(main())
