#!/usr/bin/env python3
"""SSH data plane throughput: vmigrate relay and direct next to OpenSSH, scp and rsync.

Runs every method over the same links in one run and prints MB/s and ratios:

* loopback: one sshd on 127.0.0.1 (host a = host b);
* shaped:   hosts a, b in network namespaces, each behind a 1 Gbit/s tbf link
  (needs root; skipped with the reason otherwise);
* a delta cycle over the shaped link: scattered 64 KiB changes, copied with
  checkpoints, against the target 1.2 x (changed / link rate) + 1 s.

    .venv/bin/python bench/bench_ssh.py [--size-mib 256] [--delta-mib 64] [--markdown]

Files are random (incompressible), in the page cache (warm), as in the field notes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repo root: vmigrate_lib and the tests.peers package

from tests.peers import netns as peers_netns  # noqa: E402
from tests.peers import sshd as peers_sshd  # noqa: E402
from tests.peers.hostpair import namespace_pair  # noqa: E402
from tests.peers.sshd import SshHost  # noqa: E402
from vmigrate_lib.dataplane import open_ssh_datastore  # noqa: E402
from vmigrate_lib.dataplane.ssh import SshAgentDatastore  # noqa: E402
from vmigrate_lib.dataplane.sshconfig import RFC4344_AES_BYTES, DirectRoute, SshSettings  # noqa: E402
from vmigrate_lib.engine.copier import copy_extents  # noqa: E402
from vmigrate_lib.extents import Extent, normalize  # noqa: E402

MiB = 1 << 20
LINK_RATE = 125e6  # 1 Gbit/s in bytes/s


def settings(h: SshHost, **kw: Any) -> SshSettings:
    return SshSettings(host=h.ip, port=h.port, user=h.user, key_filename=h.key_path,
                       known_hosts=h.known_hosts_path, allow_agent=False, **kw)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(argv: list[str], **kw: Any) -> None:
    kw.setdefault("stdout", subprocess.PIPE)
    p = subprocess.run(argv, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {p.stderr.decode(errors='replace')[-500:]}")


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm


def fresh(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def measure_link(
    label: str, a: SshHost, b: SshHost, a_to_b: SshHost | None, route: DirectRoute,
    work: Path, size: int, repeats: int,
) -> dict[str, float]:
    """MB/s per method (best of ``repeats``), same file, same hosts."""
    src = work / "a" / "disk"
    dst_dir = work / "b"
    results: dict[str, float] = {}

    def best(name: str, fn: Callable[[], Any], setup: Callable[[], Any] = lambda: None) -> None:
        times = []
        for _ in range(repeats):
            setup()
            times.append(timed(fn))
        results[name] = size / min(times) / 1e6
        print(f"  {label:8s} {name:24s} {results[name]:8.1f} MB/s", flush=True)

    ssh_opts = a.ssh_options()
    dst = dst_dir / "disk"
    best("ssh cat (a->here)", lambda: run(a.ssh_argv("cat", str(src)), stdout=subprocess.DEVNULL))
    best("ssh cat | ssh (relay)", lambda: run(["bash", "-o", "pipefail", "-c",
         f"{a.ssh_command('cat', str(src))} | {b.ssh_command('cat > ' + str(dst))}"]),
         lambda: fresh(dst))
    if a_to_b is not None:
        best("ssh a 'ssh b cat>' (a->b)", lambda: run(a.ssh_argv(
            f"{a_to_b.ssh_command('cat > ' + str(dst))} < {src}")), lambda: fresh(dst))
    port_idx = ssh_opts.index("-p")
    scp = ["scp", "-q", "-P", ssh_opts[port_idx + 1],
           *[o for i, o in enumerate(ssh_opts) if i not in (port_idx, port_idx + 1)]]
    best("scp (a->here)", lambda: run([*scp, f"{a.user}@{a.ip}:{src}", str(work / "scp.out")]),
         lambda: fresh(work / "scp.out"))
    rsh = " ".join(["ssh", *ssh_opts])
    best("rsync (a->here)", lambda: run(["rsync", "-q", "--whole-file", "-e", rsh,
                                         f"{a.user}@{a.ip}:{src}", str(work / "rsync.out")]),
         lambda: fresh(work / "rsync.out"))

    ds_a = open_ssh_datastore("a", str(work / "a"), settings(a))
    ds_b = open_ssh_datastore("b", str(dst_dir), settings(b))
    dir_a = open_ssh_datastore("a", str(work / "a"), settings(a, mode="direct", direct=route))
    assert isinstance(ds_a, SshAgentDatastore) and isinstance(dir_a, SshAgentDatastore)
    try:
        def prep() -> None:
            fresh(dst)
            ds_b.create_disk("disk", size)

        best("vmigrate read (a->here)", lambda: sum(
            c.length for c in ds_a.read_extents("disk", [Extent(0, size)])))
        best("vmigrate relay (a->b)", lambda: copy_extents(
            ds_a, "disk", ds_b, "disk", [Extent(0, size)]), prep)
        best("vmigrate direct (a->b)", lambda: copy_extents(
            dir_a, "disk", ds_b, "disk", [Extent(0, size)]), prep)
        assert "wire" in dir_a.last_summary
        run(["cmp", str(src), str(dst)])
    finally:
        ds_a.close()
        ds_b.close()
        dir_a.close()
    return results


class _KeySwitches(logging.Handler):
    """Counts paramiko's "Switch to new keys" (one per completed key exchange)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Switch to new keys" in record.getMessage():
            self.count += 1


def _read_rate(ds: Any, size: int, repeats: int) -> float:
    """Best MB/s of ``repeats`` whole-file reads through an agent."""
    def read() -> int:
        return sum(c.length for c in ds.read_extents("disk", [Extent(0, size)]))

    return size / min(timed(read) for _ in range(repeats)) / 1e6


def rekey_cost(h: SshHost, work: Path, size: int, repeats: int, low: int = 8 * MiB) -> dict[str, float]:
    """Read throughput at the RFC 4344 limit (64 GiB: no rekey in this file) and at a
    low limit (a rekey every ``low`` bytes); the difference per rekey, spread over
    64 GiB, is what the RFC 4344 limit costs a long transfer."""
    src = work / "a"
    log = logging.getLogger("paramiko.transport")
    counter = _KeySwitches()
    log.addHandler(counter)
    old_level = log.level
    log.setLevel(logging.DEBUG)
    out: dict[str, float] = {"load_1min": os.getloadavg()[0]}
    try:
        for name, limit in (("rfc4344", RFC4344_AES_BYTES), ("low", low)):
            ds = open_ssh_datastore("a", str(src), settings(h, rekey_bytes=limit))
            try:
                ds.free_space()
                counter.count = 0
                out[f"{name}_MBps"] = _read_rate(ds, size, repeats)
                out[f"{name}_rekeys_per_read"] = counter.count / repeats
            finally:
                ds.close()
            print(f"  rekey    limit {limit / MiB:>8.0f} MiB: {out[f'{name}_MBps']:7.1f} MB/s, "
                  f"{out[f'{name}_rekeys_per_read']:.0f} rekeys per read", flush=True)
    finally:
        log.removeHandler(counter)
        log.setLevel(old_level)
    n = out["low_rekeys_per_read"] - out["rfc4344_rekeys_per_read"]
    per = (size / out["low_MBps"] - size / out["rfc4344_MBps"]) / 1e6 / n if n > 0 else 0.0
    out["seconds_per_rekey"] = per
    # one rekey per 64 GiB at the measured rate: its share of the transfer time
    out["overhead_at_rfc4344"] = per / (RFC4344_AES_BYTES / (out["rfc4344_MBps"] * 1e6))
    print(f"  rekey    {per * 1000:.1f} ms per rekey; at one per 64 GiB: "
          f"{out['overhead_at_rfc4344'] * 100:.4f} % of the transfer time "
          f"(load {out['load_1min']:.2f})", flush=True)
    return out


def delta_cycle(a: SshHost, b: SshHost, route: DirectRoute, work: Path, disk_mib: int,
                delta_mib: int) -> dict[str, float]:
    """Scattered 64 KiB changes copied with checkpoints over the shaped link."""
    rnd = random.Random(5)
    size = disk_mib * MiB
    src, dst = work / "a" / "delta", work / "b" / "delta"
    make_file(src, size)
    shutil.copyfile(src, dst)
    blocks = sorted(rnd.sample(range(size // (64 * 1024)), delta_mib * 16))
    with open(src, "r+b") as f:
        for blk in blocks:
            f.seek(blk * 64 * 1024)
            f.write(os.urandom(64 * 1024))
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)
    extents = normalize(Extent(blk * 64 * 1024, 64 * 1024) for blk in blocks)
    changed = sum(e.length for e in extents)
    target = 1.2 * changed / LINK_RATE + 1.0
    out: dict[str, float] = {"changed_MiB": changed / MiB, "extents": len(extents),
                             "target_s": target}
    for mode in ("relay", "direct"):
        ds_a = open_ssh_datastore("a", str(work / "a"),
                                  settings(a, mode=mode, direct=route))
        ds_b = open_ssh_datastore("b", str(work / "b"), settings(b))
        try:
            ds_a.free_space()
            ds_b.free_space()  # connections up: a cycle reuses its datastores
            t0 = time.perf_counter()
            copy_extents(ds_a, "delta", ds_b, "delta", extents, checkpoint_bytes=64 * MiB,
                         on_checkpoint=lambda _o: None)
            secs = time.perf_counter() - t0
        finally:
            ds_a.close()
            ds_b.close()
        run(["cmp", str(src), str(dst)])
        out[f"{mode}_s"] = secs
        print(f"  delta    {mode:6s} {changed / MiB:.0f} MiB in {len(extents)} extents: "
              f"{secs:.2f} s (target <= {target:.2f} s)", flush=True)
    return out


@contextlib.contextmanager
def namespace_hosts(work: Path) -> Iterator[tuple[SshHost, SshHost, SshHost, DirectRoute]]:
    """sshd for hosts a and b in namespaces behind 1 Gbit/s links; b as a reaches it."""
    with namespace_pair(work, "1gbit", "1ms") as pair:
        yield (pair.servers["a"].host, pair.servers["b"].host, pair.a_to_b,
               DirectRoute(identity=pair.peer_key.path, known_hosts=pair.known_hosts))


def ratios(r: dict[str, float]) -> dict[str, float]:
    cat = r["ssh cat (a->here)"]
    out = {
        "relay / ssh cat": r["vmigrate relay (a->b)"] / cat,
        "relay / ssh|ssh relay": r["vmigrate relay (a->b)"] / r["ssh cat | ssh (relay)"],
        "direct / ssh cat": r["vmigrate direct (a->b)"] / cat,
        "read / ssh cat": r["vmigrate read (a->here)"] / cat,
    }
    if "ssh a 'ssh b cat>' (a->b)" in r:
        out["direct / ssh a->b"] = r["vmigrate direct (a->b)"] / r["ssh a 'ssh b cat>' (a->b)"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--delta-disk-mib", type=int, default=1024)
    ap.add_argument("--delta-mib", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-loopback", action="store_true")
    ap.add_argument("--rekey-only", action="store_true",
                    help="only the rekey cost on loopback (RFC 4344 limit vs a low one)")
    args = ap.parse_args()
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="vmg-bench-ssh-"))
    os.chmod(work, 0o755)
    all_results: dict[str, dict[str, float]] = {}
    try:
        (work / "a").mkdir()
        (work / "b").mkdir()
        make_file(work / "a" / "disk", size)
        print(f"SSH data plane bench: {args.size_mib} MiB random file, {os.cpu_count()} CPUs, "
              f"best of {args.repeats}")
        if args.rekey_only:
            with peers_sshd.start_sshd("bench-rekey") as srv:
                rekey_cost(srv.host, work, size, args.repeats)
            return 0
        if not args.skip_loopback:
            with peers_sshd.start_sshd("bench-loopback") as srv:
                h = srv.host
                route = DirectRoute(identity=h.key_path, known_hosts=h.known_hosts_path)
                all_results["loopback"] = measure_link("loopback", h, h, h, route, work, size,
                                                       args.repeats)
                all_results["rekey"] = rekey_cost(h, work, size, args.repeats)
        ok, why = peers_netns.available()
        if ok:
            with namespace_hosts(work) as (a, b, a_to_b, route):
                all_results["1gbit"] = measure_link("1gbit", a, b, a_to_b, route, work, size,
                                                    args.repeats)
                all_results["delta"] = delta_cycle(a, b, route, work, args.delta_disk_mib,
                                                   args.delta_mib)
        else:
            print(f"shaped link skipped: {why}")
        print("\nratios (target: relay >= 0.80 of ssh cat on loopback, >= 0.90 on 1gbit; "
              "direct >= 0.90)")
        for link in ("loopback", "1gbit"):
            if link in all_results:
                for k, v in ratios(all_results[link]).items():
                    print(f"  {link:8s} {k:24s} {v:6.2f}")
        if "delta" in all_results:
            d = all_results["delta"]
            for mode in ("relay", "direct"):
                verdict = "ok" if d[f"{mode}_s"] <= d["target_s"] else "MISSED"
                print(f"  delta    {mode:6s} {d[f'{mode}_s']:.2f} s vs target {d['target_s']:.2f} s: {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
