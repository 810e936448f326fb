#!/usr/bin/env python3
"""The planner against the clock: predicted vs measured cutover downtime, on a slow link and locally.

For each case, on a fresh lab whose guest writes at the given rate (4 KiB writes,
so each dirties a 64 KiB grain, as VMware CBT does), every step is the operator's
own command (``python -m vmigrate_lib.faces.cli``), as the issue measured it:

1. ``vmigrate sync --until-converged --downtime-budget B`` (seed, then cycles);
2. the documented rehearsal: ``vmigrate cutover --force`` then
   ``vmigrate rollback --yes-lose-bob-writes`` (journals measured shutdown and boot);
3. ``vmigrate sync --until-converged`` again (a hash-compare cycle, then deltas);
4. ``vmigrate cutover`` (``--force`` where the planner said no: its prediction is
   still compared), whose go/no-go prediction is set against the downtime it measured.

Links: "100mbit" serves both lab datastores over real sshd in network namespaces
behind ``tc`` ``tbf`` 100 Mbit/s links (tests/peers/netns.py; this kernel has no
``sch_netem``, so no added delay, only rate shaping); "local" is the fast local path
(no SSH).  Needs root for the namespaces.

    .venv/bin/python bench/bench_planner.py [--cases 100mbit:1,100mbit:5,100mbit:20,local:5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repo root: vmigrate_lib and the tests.peers package

from tests.labkit import alice_on_a  # noqa: E402
from tests.peers import netns as peers_netns  # noqa: E402
from tests.peers.hostpair import namespace_pair  # noqa: E402
from tests.peers.sshd import SshHost  # noqa: E402
from vmigrate_lib.lab.workload import WorkloadSpec  # noqa: E402
from vmigrate_lib.params import CutoverParams  # noqa: E402

MiB = 1 << 20


@contextlib.contextmanager
def shaped_hosts(work: Path, rate: str) -> Iterator[tuple[SshHost, SshHost]]:
    """sshd for hosts a and b, each in a namespace behind a tbf link of ``rate``."""
    with namespace_pair(work, rate) as pair:
        yield pair.a, pair.b


def host_params(name: str, root: Path, ssh: SshHost | None) -> dict[str, Any]:
    hp: dict[str, Any] = {"type": "lab", "host": name, "lab_root": str(root)}
    if ssh is not None:
        hp.update(url=f"ssh://{ssh.user}@{ssh.ip}:{ssh.port}", ssh_key=ssh.key_path,
                  ssh_known_hosts=ssh.known_hosts_path)
    return hp


def cutover_params() -> dict[str, Any]:
    """Planner estimates until the rehearsal measures them; no whole-disk certify rule where
    this vmigrate has one (orthogonal to the planner: its certify cycles would move the
    window this bench measures)."""
    out: dict[str, Any] = {"expected_shutdown": "2s", "expected_boot": "2s"}
    if "full_certify_within" in CutoverParams.__dataclass_fields__:
        out["full_certify_within"] = 0
    return out


def vmigrate(work: Path, *args: str, check: bool = True) -> str:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args,
                        "--params", str(work / "params.yaml")],
                       capture_output=True, text=True, cwd=work, check=False)
    out = r.stdout + r.stderr
    print(f"    vmigrate {' '.join(args)}: exit {r.returncode}, {time.monotonic() - t0:.1f} s",
          file=sys.stderr)
    if check and r.returncode != 0:
        raise RuntimeError(f"vmigrate {' '.join(args)} failed ({r.returncode}):\n{out[-3000:]}")
    return out


def journal(work: Path) -> list[dict[str, Any]]:
    path = work / "ws" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def until_converged(work: Path, budget: str, max_cycles: int) -> dict[str, Any]:
    """One ``sync --until-converged``; its cycles' deltas and its last plan."""
    before = len(journal(work)) if (work / "ws" / "journal.jsonl").exists() else 0
    vmigrate(work, "sync", "--until-converged", "--downtime-budget", budget,
             "--max-cycles", str(max_cycles), check=False)
    recs = journal(work)[before:]
    cycles = [r for r in recs if r.get("type") == "cycle"]
    plans = [r for r in recs if r.get("type") == "plan"]
    return {"deltas MiB": [round(c.get("bytes_changed", 0) / MiB) for c in cycles],
            "plan": plans[-1] if plans else {}, "cycles": len(cycles)}


def one(link: str, rate: float, base: Path, disk_mib: int, budget: str,
        max_cycles: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(alice_on_a(
            base / "lab", (disk_mib * MiB, disk_mib * MiB // 2),
            WorkloadSpec(rate_mb_s=rate, ack_interval=0.5), fill=0.15, ready_timeout=60,
            down_timeout=10))
        ssh: tuple[SshHost | None, SshHost | None] = (None, None)
        if link != "local":
            ssh = stack.enter_context(shaped_hosts(base, link))
        (base / "params.yaml").write_text(yaml.safe_dump({
            "vm": "alice", "dest_name": "bob", "downtime_budget": budget, "operator": "bench",
            "source": host_params("esx-a", root, ssh[0]),
            "destination": host_params("esx-b", root, ssh[1]),
            "workspace": str(base / "ws"),
            "cutover": cutover_params(),
        }))
        first = until_converged(base, budget, max_cycles)
        vmigrate(base, "cutover", "--force")  # the rehearsal: measures shutdown and boot
        vmigrate(base, "rollback", "--yes-lose-bob-writes")
        second = until_converged(base, budget, max_cycles)
        verdict = second["plan"].get("converged")
        vmigrate(base, "cutover", *(() if verdict else ("--force",)))
    return row(link, rate, first, second, journal(base))


def row(link: str, rate: float, first: dict[str, Any], second: dict[str, Any],
        recs: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in recs if r.get("type") == "cutover_done"][-1]
    meas, pred = done["measured"], done["predicted"]
    final = [r for r in recs if r.get("type") == "cycle" and r.get("kind") == "final"][-1]
    plan = second["plan"]
    dt = float(meas["downtime_s"])
    p = float(pred["predicted_downtime"])
    return {
        "link": link, "MB/s": rate,
        "sync 1 deltas MiB": "/".join(str(x) for x in first["deltas MiB"]),
        "sync 1 verdict": _verdict(first["plan"]),
        "sync 2 deltas MiB": "/".join(str(x) for x in second["deltas MiB"]),
        "sync 2 verdict": _verdict(plan),
        "dirty MB/s": plan.get("dirty_rate", 0.0) / 1e6,
        "thr MB/s": plan.get("throughput", 0.0) / 1e6,
        "final MiB p/m": f"{(pred.get('final_bytes') or 0) / MiB:.0f}/"
                         f"{(final.get('bytes_changed') or 0) / MiB:.0f}",
        "shutdown p/m": f"{pred.get('shutdown') or 0:.1f}/{meas.get('shutdown_s', 0):.1f}",
        "copy p/m": f"{pred.get('final_copy') or 0:.1f}/{meas.get('final_copy_s', 0):.1f}",
        "boot p/m": f"{pred.get('boot') or 0:.1f}/{meas.get('boot_s', 0):.1f}",
        "pred s": p, "meas s": dt,
        "error %": 100.0 * (p - dt) / dt if dt else float("nan"),
        "load": os.getloadavg()[0],
    }


def _verdict(plan: dict[str, Any]) -> str:
    if plan.get("converged"):
        return "converged"
    return "won't" if not plan.get("will_converge", True) else "max cycles"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cases", default="100mbit:1,100mbit:5,100mbit:20,local:5",
                    help="link:guest MB/s, comma separated (link: local or a tc rate)")
    ap.add_argument("--disk-mib", type=int, default=512, help="first disk; the second is half")
    ap.add_argument("--budget", default="30s")
    ap.add_argument("--max-cycles", type=int, default=8)
    ap.add_argument("--tolerance", type=float, default=15.0, help="target, percent")
    args = ap.parse_args(argv)
    if any(not c.startswith("local") for c in args.cases.split(",")):
        ok, why = peers_netns.available()
        if not ok:
            print(f"bench_planner: shaped links need network namespaces: {why}", file=sys.stderr)
            return 2
    rows = []
    for case in args.cases.split(","):
        link, rate = case.split(":")
        base = Path(tempfile.mkdtemp(prefix=f"vmigrate-planner-{link}-{rate}-"))
        t0 = time.monotonic()
        print(f"  {link} at {rate} MB/s (load {os.getloadavg()[0]:.2f})", file=sys.stderr)
        try:
            rows.append(one(link, float(rate), base, args.disk_mib, args.budget, args.max_cycles))
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print(f"  done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    cols = list(rows[0])
    cells = [[f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in rows]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for cell in cells:
        print("| " + " | ".join(cell) + " |")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
