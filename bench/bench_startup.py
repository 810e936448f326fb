#!/usr/bin/env python3
"""Start-up of a command over SSH (issue 13 items 3 and 5): a whole ``vmigrate sync --cycles 1``
against its own delta cycle, over real sshd behind ``tc`` ``tbf`` links.

A lab guest writes on host a; hosts a and b serve their datastores through sshd in network
namespaces (tests/peers: this kernel has no ``sch_netem``, so rate shaping only, no added
delay).  After a seed, each run is one operator's command, timed from outside (fork to
exit), and the same command again run in-process under a probe that times its phases:
interpreter + imports, connect + auth, agent starts, preflight (requests counted), the
cycle, clean-up.  Targets: the command costs at most 0.5 s more than its cycle; a delta
over the link at most 1.2 x (changed bytes / link rate) + 0.5 s.  Beside them, for scale,
what an operator would type: ``ssh host true`` and ``rsync`` of a file the size of the
delta to host b.  Needs root for the namespaces.

    .venv/bin/python bench/bench_startup.py [--rate 100mbit] [--runs 5] [--guest-mb-s 1]
    .venv/bin/python bench/bench_startup.py --keep [--esxi-shell]   # with and without a keeper
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the repo root: vmigrate_lib and the tests.peers package

from tests.labkit import lab_host  # noqa: E402
from tests.peers.hostpair import ESXI_SHELL, namespace_pair  # noqa: E402
from tests.peers.netns_probe import parse_rate  # noqa: E402
from tests.peers.sshd import SshHost  # noqa: E402
from vmigrate_lib.control.lab import LabHost  # noqa: E402
from vmigrate_lib.lab.layout import LabLayout  # noqa: E402
from vmigrate_lib.lab.lifecycle import create_vm, lab_down, lab_up  # noqa: E402
from vmigrate_lib.lab.workload import WorkloadSpec  # noqa: E402

MiB = 1 << 20
PROBE = "--probe-phases"  #: how an older checkout's bench_startup.py ran its probe


@contextlib.contextmanager
def shaped_hosts(work: Path, rate: str, extra_config: tuple[str, ...] = ()
                 ) -> Iterator[tuple[SshHost, SshHost, list[Any]]]:
    """sshd for hosts a and b, each in a namespace behind a tbf link of ``rate``."""
    with namespace_pair(work, rate, extra_config=extra_config) as pair:
        yield pair.a, pair.b, list(pair.servers.values())


def host_params(name: str, root: Path, ssh: SshHost, **extra: Any) -> dict[str, Any]:
    return lab_host(ssh, name, root, **extra)


def cli_argv(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "vmigrate_lib.faces.cli", *args, "--params",
            str(work / "params.yaml")]


def journal(work: Path) -> list[dict[str, Any]]:
    path = work / "ws" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_cycle(work: Path) -> dict[str, Any]:
    return [r for r in journal(work) if r.get("type") == "cycle"][-1]


def timed_sync(work: Path, tree: Path = ROOT, env: dict[str, str] | None = None
               ) -> dict[str, Any]:
    """One ``vmigrate sync --cycles 1`` as an operator runs it: wall time fork to exit
    (``tree``: the checkout whose vmigrate runs, e.g. an older one to compare; ``env``:
    its environment, e.g. the runtime folder where a keeper listens, or an empty one)."""
    t0 = time.perf_counter()
    r = subprocess.run(cli_argv(work, "sync", "--cycles", "1"), capture_output=True, text=True,
                       cwd=tree, check=False, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0 or "keeper not used" in r.stderr:
        raise RuntimeError(f"sync failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    c = last_cycle(work)
    return {"wall": wall, "cycle": float(c["duration"]), "changed": int(c["bytes_changed"]),
            "sent": int(c.get("bytes_sent", 0)), "load": os.getloadavg()[0]}


def probed_sync(work: Path, tree: Path = ROOT, env: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """The same command under the phase probe (``tree``'s bench/startup_probe.py)."""
    probe = tree / "bench" / "startup_probe.py"
    # an older checkout (--before) carried the probe in this file, behind PROBE
    cmd = [str(probe)] if probe.exists() else [str(tree / "bench" / Path(__file__).name), PROBE]
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *cmd, "sync", "--cycles", "1", "--params",
                        str(work / "params.yaml")],
                       capture_output=True, text=True, cwd=tree, check=False, env=env)
    wall = time.perf_counter() - t0
    line = next((x for x in r.stderr.splitlines() if x.startswith("PROBE ")), None)
    if r.returncode != 0 or line is None:
        raise RuntimeError(f"probed sync failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    out: dict[str, Any] = json.loads(line[len("PROBE "):])
    out["wall"] = wall
    out["interpreter"] = wall - out["probe_total"]
    out["cycle"] = float(last_cycle(work)["duration"])
    return out


def compiled_ahead(trees: list[Path]) -> str:
    """Compile each tree's vmigrate_lib to bytecode first, as ``pip install`` does for an
    operator's install: with PYTHONDONTWRITEBYTECODE set (this machine's environment) and
    no __pycache__, every command compiled its ~60 modules from source, ~0.3 s each time
    (cProfile: ``builtins.compile``)."""
    for tree in trees:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "vmigrate_lib")],
                       check=True)
    return ("compiled ahead (compileall); PYTHONDONTWRITEBYTECODE="
            + os.environ.get("PYTHONDONTWRITEBYTECODE", ""))


def runtime_envs(work: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Environments of the commands without a keeper (an empty runtime folder) and with
    one (the folder where ``keep start`` puts its sockets)."""
    envs = []
    for name in ("run-plain", "run-kept"):
        folder = work / name
        folder.mkdir(mode=0o700)
        envs.append({**os.environ, "XDG_RUNTIME_DIR": str(folder)})
    return envs[0], envs[1]


def start_keeper(work: Path, env: dict[str, str]) -> float:
    """``vmigrate keep start`` for the bench's hosts; its wall time (logins, agent file
    check, spare agents started)."""
    t0 = time.perf_counter()
    r = subprocess.run(cli_argv(work, "keep", "start", "--for", "30m"), capture_output=True,
                       text=True, env=env, check=False)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"keep start failed ({r.returncode}): {r.stdout + r.stderr}")
    print(r.stdout.strip(), file=sys.stderr)
    return took


def ssh_true(h: SshHost) -> float:
    t0 = time.perf_counter()
    subprocess.run(h.ssh_argv("true"), check=True, capture_output=True)
    return time.perf_counter() - t0


def rsync_file(h: SshHost, size: int, work: Path) -> float:
    """rsync of a fresh random file of ``size`` bytes to host ``h`` (no file there yet)."""
    src = work / "rsync-src"
    src.write_bytes(os.urandom(size))
    dest = f"/tmp/vmg-bench-rsync-{os.getpid()}"
    subprocess.run(h.ssh_argv(f"rm -f {dest}"), check=True, capture_output=True)
    e = " ".join(h.ssh_argv()[:-2])  # ssh and its options (rsync adds user@host and the command)
    t0 = time.perf_counter()
    subprocess.run(["rsync", "-e", e, str(src), f"{h.user}@{h.ip}:{dest}"], check=True,
                   capture_output=True)
    took = time.perf_counter() - t0
    subprocess.run(h.ssh_argv(f"rm -f {dest}"), check=False, capture_output=True)
    return took


def summarize(rows: list[dict[str, Any]], link_bps: float) -> dict[str, Any]:
    over = [r["wall"] - r["cycle"] for r in rows]
    target = [1.2 * r["changed"] / link_bps + 0.5 for r in rows]
    return {
        "runs": len(rows),
        "wall s (median)": statistics.median(r["wall"] for r in rows),
        "cycle s (median)": statistics.median(r["cycle"] for r in rows),
        "wall - cycle s (median, min-max)": (statistics.median(over), min(over), max(over)),
        "changed MiB (median)": statistics.median(r["changed"] for r in rows) / MiB,
        "delta target s (median)": statistics.median(target),
        "within target": sum(r["wall"] <= t for r, t in zip(rows, target, strict=True)),
        "within cycle + 0.5 s": sum(o <= 0.5 for o in over),
        "load": (min(r["load"] for r in rows), max(r["load"] for r in rows)),
    }


def phases(probed: list[dict[str, Any]]) -> dict[str, Any]:
    """Median seconds per phase, and what the host saw (logins, execs, requests)."""
    keys = ["interpreter", "imports", "wall", "cycle"]
    out: dict[str, Any] = {k: round(statistics.median(p[k] for p in probed), 2) for k in keys}
    for k in sorted({k for p in probed for k in p["secs"]}):
        out[k] = round(statistics.median(p["secs"].get(k, 0.0) for p in probed), 2)
    out["counts"] = probed[-1]["counts"]
    out["requests"] = sum(probed[-1]["requests"].values())
    out["heavy modules"] = probed[-1]["heavy modules"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rate", default="100mbit", help="tc rate of each host's link")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--guest-mb-s", type=float, default=1.0, help="the lab guest's write rate")
    ap.add_argument("--disk-mib", type=int, default=64, help="first disk; the second is half")
    ap.add_argument("--interval", type=float, default=2.0, help="pause between runs (s)")
    ap.add_argument("--json", default="", help="also write the rows here")
    ap.add_argument("--esxi-shell", action="store_true", help=(
        "sessions run no shell rc file, as ESXi's busybox ash runs none for a command: sshd "
        "SetEnv SHLVL=1, so bash skips ~/.bashrc (bash shell.c run_startup_files: only when "
        "shell_level < 2), here root's pyenv init, and python3 is the system's"))
    ap.add_argument("--keep", action="store_true", help=(
        "also run each command through a connection keeper (`vmigrate keep start`, once "
        "before the commands, its own start timed apart), interleaved with the same command "
        "without one (an empty runtime folder)"))
    ap.add_argument("--before", default="", help="another checkout (e.g. `git archive` of an "
                    "older commit) whose commands run interleaved with this one's, same links")
    args = ap.parse_args(argv)
    report: dict[str, Any] = {"bytecode": compiled_ahead(
        [ROOT] + ([Path(args.before)] if args.before else []))}
    link_bps = parse_rate(args.rate) / 8
    base = Path(tempfile.mkdtemp(prefix="vmg-bench-startup-"))
    os.chmod(base, 0o755)
    root = base / "lab"
    lab_up(root, vm="", power_on=False)
    create_vm(LabLayout(root), "esx-a", "datastore1", "alice",
              (args.disk_mib * MiB, args.disk_mib * MiB // 2),
              workload=WorkloadSpec(rate_mb_s=args.guest_mb_s, ack_interval=0.5), fill=0.15)
    a_host = LabHost(root, "esx-a")
    a_host.power_on("alice")
    a_host.wait_ready("alice", 60)
    report.update({"rate": args.rate, "load before": os.getloadavg()})
    try:
        extra = ESXI_SHELL if args.esxi_shell else ()
        report["esxi shell"] = args.esxi_shell
        with shaped_hosts(base, args.rate, extra) as (a, b, _servers):
            (base / "params.yaml").write_text(yaml.safe_dump({
                "vm": "alice", "dest_name": "bob", "downtime_budget": "30s", "operator": "bench",
                "source": host_params("esx-a", root, a), "destination": host_params("esx-b", root, b),
                "workspace": str(base / "ws")}))
            seed = timed_sync(base)
            print(f"seed: {seed['wall']:.1f} s wall, cycle {seed['cycle']:.1f} s", file=sys.stderr)
            plain, probed, old, old_probed, kept, kept_probed = [], [], [], [], [], []
            plain_env = kept_env = None
            if args.keep:
                plain_env, kept_env = runtime_envs(base)
                report["keeper start s"] = start_keeper(base, kept_env)
            for i in range(args.runs):
                if kept_env is not None:  # through the keeper, in the same minute
                    time.sleep(args.interval)
                    kept.append(timed_sync(base, env=kept_env))
                    time.sleep(args.interval)
                    kept_probed.append(probed_sync(base, env=kept_env))
                if args.before:  # the older tree first, in the same minute
                    time.sleep(args.interval)
                    old.append(timed_sync(base, Path(args.before)))
                    time.sleep(args.interval)
                    old_probed.append(probed_sync(base, Path(args.before)))
                time.sleep(args.interval)
                plain.append(timed_sync(base, env=plain_env))
                time.sleep(args.interval)
                probed.append(probed_sync(base, env=plain_env))
                print(f"run {i}: wall {plain[-1]['wall']:.2f} s, cycle {plain[-1]['cycle']:.2f} s, "
                      f"changed {plain[-1]['changed'] / MiB:.1f} MiB, load {plain[-1]['load']:.1f}"
                      + (f"; kept: wall {kept[-1]['wall']:.2f} s, cycle {kept[-1]['cycle']:.2f} s"
                         if kept else ""), file=sys.stderr)
            report["delta commands"] = summarize(plain, link_bps)
            report["phases (probed runs, medians)"] = phases(probed)
            if args.before:
                report["before: delta commands"] = summarize(old, link_bps)
                report["before: phases (probed runs, medians)"] = phases(old_probed)
                report["before: rows"] = old
            if kept_env is not None:
                report["keeper: delta commands"] = summarize(kept, link_bps)
                report["keeper: phases (probed runs, medians)"] = phases(kept_probed)
                report["keeper: rows"] = kept
                report["keeper status"] = subprocess.run(
                    cli_argv(base, "keep", "status")[:-2], capture_output=True, text=True,
                    env=kept_env, check=False).stdout
            report["probed runs"] = probed
            report["ssh true s"] = sorted(ssh_true(a) for _ in range(5))
            changed = int(statistics.median(r["changed"] for r in plain))
            report["rsync of the changed size s"] = sorted(
                rsync_file(b, max(changed, 1), base) for _ in range(3))
            report["rows"] = plain
    finally:
        if (base / "run-kept").is_dir():  # the keeper ends with the bench, failed or not
            subprocess.run(cli_argv(base, "keep", "stop")[:-2], capture_output=True, check=False,
                           env={**os.environ, "XDG_RUNTIME_DIR": str(base / "run-kept")})
        lab_down(root, timeout=10)
        report["load after"] = os.getloadavg()
        shutil.rmtree(base, ignore_errors=True)
    short = {k: v for k, v in report.items()
             if k not in ("probed runs", "rows", "before: rows", "keeper: rows")}
    print(json.dumps(short, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
