"""The guest of a running lab VM: ``python -m vmigrate_lib.lab.guest --vmdir D --config F``.

It boots (finishes any interrupted consolidation, checks every block and the
ack map: ``boot.json``), then writes its workload until told to stop, and
serves the control socket the lab host uses for snapshots ("stun": the writer
is paused by a lock for the critical section), status and shutdown.  SIGTERM
or a ``shutdown`` command = clean shutdown (flush, fsync, final ack map);
SIGKILL = pulled plug (acks persisted so far stay, later ones are lost).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import LabError, ParameterError
from .acks import AckMap, ack_path
from .blockfmt import make_block
from .guestctl import encode, error_reply, socket_path
from .layout import atomic_write_json
from .machine import VmMachine
from .power import BOOT_FILE, LOCK_FILE, hold_power_lock, lock_holder
from .verify import check
from .workload import BlockPicker, TokenBucket, WorkloadSpec

log = logging.getLogger("vmlab.guest")

#: Lab only, for tests (tests/lab/test_snapshots.py): the lab guest dies (like a host
#: crash) after N grains consolidated.  Read by the lab's guest process only, never by
#: the engine or a real host's code; the name says "test only" so that nobody sets it
#: by accident in an operator's shell.
FAULT_ENV = "VMIGRATE_LAB_TEST_ONLY_FAULT_CONSOLIDATE_AFTER"


class Guest:
    def __init__(self, vmdir: Path, config_file: str) -> None:
        self.vmdir = vmdir
        self.config_path = vmdir / config_file
        self.stun = threading.Lock()  #: held by the writer per block, by ops for critical sections
        self.ops = threading.Lock()  #: one control operation (or ack flush) at a time
        self.stop = threading.Event()
        self.booted = threading.Event()
        self.state = "booting"
        self.machine: VmMachine | None = None
        self.acks: list[AckMap] = []
        self.next_seq: list[int] = []
        self.spec = WorkloadSpec()
        self.writes = 0
        self.bytes = 0
        self.boot: dict[str, Any] = {}
        #: bumped when a disk is resized or added: the writer re-plans over the new sizes
        self.geometry = 0
        fault = os.environ.get(FAULT_ENV)
        self.fault_after = int(fault) if fault else None

    # --- boot ----------------------------------------------------------------------
    def _on_progress(self, copied: int) -> None:
        if self.fault_after is not None and copied >= self.fault_after:
            log.error("fault injection: dying after %d consolidated grains", copied)
            logging.shutdown()
            os._exit(86)

    def boot_up(self) -> bool:
        t0 = time.monotonic()
        self.machine = m = VmMachine.open(self.config_path, on_progress=self._on_progress)
        self.spec = m.config.workload
        reports = []
        for d in m.disks:
            path = ack_path(self.vmdir, d.key)
            acks = AckMap.load(path) if path.exists() else None
            rep = check(d.read, d.allocated(), d.key, acks, path=str(d.base_path))
            reports.append(rep.to_dict())
            if acks is None or acks.block_size != self.spec.block_size:
                acks = AckMap(d.key, self.spec.block_size)
            acks.clean = False
            self.acks.append(acks)
            self.next_seq.append(max(rep.max_seq, acks.max_seq) + 1)
        ok = all(r["ok"] for r in reports)
        self.boot = {
            "ok": ok,
            "pid": os.getpid(),
            "finished": time.time(),
            "seconds": round(time.monotonic() - t0, 3),
            "disks": reports,
        }
        atomic_write_json(self.vmdir / BOOT_FILE, self.boot)
        log.info("boot check %s in %.2fs", "passed" if ok else "FAILED", self.boot["seconds"])
        for r in reports:
            for p in r["problems"]:
                log.error("disk %s: %s", r["disk_key"], p)
        return ok

    # --- workload ------------------------------------------------------------------
    def writer(self) -> None:
        assert self.machine is not None
        spec: WorkloadSpec | None = None
        picker: BlockPicker | None = None
        geometry = -1
        bucket = TokenBucket(0, 1)
        while not self.stop.is_set():
            if spec is not self.spec or geometry != self.geometry:
                with self.stun:
                    spec, geometry = self.spec, self.geometry
                    caps = [d.capacity for d in self.machine.disks]
                    salt = sum(self.next_seq)
                picker = BlockPicker(spec, caps, salt=salt)
                rate = spec.rate_mb_s * 1e6
                bucket = TokenBucket(rate, max(spec.block_size, rate * 0.05))
            assert picker is not None
            wait = bucket.wait_time(spec.block_size) if spec.rate_mb_s > 0 else 0.1
            if wait > 0 or spec.rate_mb_s <= 0:
                self.stop.wait(min(wait, 0.1))
                continue
            di, bi = picker.next()
            bs = spec.block_size
            with self.stun:
                if geometry != self.geometry or spec is not self.spec:  # changed: pick again
                    continue
                disk = self.machine.disks[di]
                seq = self.next_seq[di]
                self.next_seq[di] = seq + 1
                disk.write(bi * bs, make_block(disk.key, bs, bi, seq))
                self.acks[di].seqs[bi] = seq
                self.writes += 1
                self.bytes += bs

    def persist_acks(self, clean: bool) -> None:
        """Make the written data durable, then record it as acknowledged."""
        assert self.machine is not None
        with self.stun:
            copies = [AckMap(a.disk_key, a.block_size, clean, dict(a.seqs)) for a in self.acks]
        self.machine.fsync()
        for c in copies:
            c.save(ack_path(self.vmdir, c.disk_key))

    def ack_loop(self) -> None:
        while not self.stop.wait(self.spec.ack_interval):
            with self.ops:
                if not self.stop.is_set():
                    self.persist_acks(clean=False)

    # --- control -------------------------------------------------------------------
    def dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "shutdown":
            self.stop.set()
            return {"ok": True}
        if not self.booted.wait(120) or self.machine is None or self.state != "running":
            raise LabError(f"guest cannot {cmd} while {self.state}", state=self.state)
        m = self.machine
        with self.ops:
            t0 = time.monotonic()
            if cmd == "snapshot_create":
                rec = m.create_snapshot(
                    str(req["name"]), str(req.get("description", "")), self.stun,
                    keep_older=bool(req.get("keep_older", False)),
                )
                return {"ok": True, "snapshot": rec.to_dict(), "stun_s": time.monotonic() - t0}
            if cmd == "snapshot_remove":
                stun_s = m.remove_snapshot(str(req["id"]), self.stun, self._on_progress)
                return {"ok": True, "stun_s": stun_s, "seconds": time.monotonic() - t0}
            if cmd in ("cbt_enable", "cbt_reset"):
                with self.stun:
                    if cmd == "cbt_enable":
                        m.enable_change_tracking()
                    else:
                        m.reset_change_tracking()
                return {"ok": True}
            if cmd == "disk_resize":
                cfg = m.resize_disk(int(req["key"]), int(req["capacity"]), self.stun)
                self.geometry += 1  # a grown disk is used at once, as a guest OS would
                return {"ok": True, "capacity": cfg.capacity}
            if cmd == "disk_add":
                with self.stun:
                    disk = m.add_disk(int(req["capacity"]))
                    self.acks.append(AckMap(disk.key, self.spec.block_size))
                    self.next_seq.append(1)
                    self.geometry += 1
                return {"ok": True, "key": disk.key}
            if cmd == "disk_remove":
                with self.stun:
                    index = m.remove_disk(int(req["key"]))
                    self.acks.pop(index)
                    self.next_seq.pop(index)
                    self.geometry += 1
                return {"ok": True}
            if cmd == "set_workload":
                spec = WorkloadSpec.from_dict(req["workload"])
                if spec.block_size != self.spec.block_size:
                    raise ParameterError("the block size of a running guest cannot change")
                m.config.workload = spec
                m.save()
                with self.stun:  # a block being written lands first; none starts after
                    self.spec = spec
                return {"ok": True}
            if cmd == "set_tools":
                m.config.tools = bool(req["tools"])
                m.save()
                return {"ok": True}
            if cmd == "flush_acks":
                self.persist_acks(clean=False)
                return {"ok": True}
        raise LabError(f"unknown guest command {cmd!r}", command=cmd)

    def status(self) -> dict[str, Any]:
        m = self.machine
        snap = m.snapshot if m is not None else None
        return {
            "ok": True,
            "state": self.state,
            "pid": os.getpid(),
            "writes": self.writes,
            "bytes": self.bytes,
            "next_seq": {str(a.disk_key): s for a, s in zip(self.acks, self.next_seq)},
            "snapshot": snap.to_dict() if snap else None,
            "delta_grains": sum(len(d.delta_grains) for d in m.disks) if m else 0,
            "workload": self.spec.to_dict(),
            "boot": self.boot,
        }

    def serve(self) -> socketserver.ThreadingUnixStreamServer:
        guest = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    reply = guest.dispatch(json.loads(self.rfile.readline()))
                except Exception as exc:
                    log.exception("control command failed")
                    reply = error_reply(exc)
                with contextlib.suppress(OSError):
                    self.wfile.write(encode(reply))

        path = socket_path(self.vmdir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = socketserver.ThreadingUnixStreamServer(path, Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
        return server

    # --- life ----------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        server = self.serve()
        threads: list[threading.Thread] = []
        try:
            if self.boot_up():
                # from the first write on, the map on disk is only a lower bound
                self.persist_acks(clean=False)
                self.state = "running"
                threads = [
                    threading.Thread(target=self.writer, name="writer", daemon=True),
                    threading.Thread(target=self.ack_loop, name="acks", daemon=True),
                ]
                for t in threads:
                    t.start()
            else:
                self.state = "boot-failed"
            self.booted.set()
            while not self.stop.wait(0.5):
                if not self.vmdir.is_dir():
                    # its VM folder was removed under it (a test run killed before its lab
                    # went down, its temp folder then cleaned): nothing left to run for
                    log.warning("VM folder %s is gone: stopping", self.vmdir)
                    self.stop.set()
                    break
            log.info("shutting down")
            self.state = "shutting-down"
            for t in threads:
                t.join()
            with self.ops:
                if threads and self.vmdir.is_dir():
                    self.persist_acks(clean=True)
                if self.machine is not None:
                    self.machine.close()
                    self.machine = None
            log.info("clean shutdown after %d writes", self.writes)
            return 0
        finally:
            self.booted.set()
            server.server_close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path(self.vmdir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vmigrate-lab-guest")
    parser.add_argument("--vmdir", required=True, type=Path)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format=f"%(asctime)s guest[{os.getpid()}] %(levelname)s %(message)s",
    )
    log.info("power on %s", args.vmdir / args.config)
    # the power lock first, before the socket or any disk: a second copy stops here
    lock = hold_power_lock(args.vmdir)
    if lock is None:
        log.error("VM %s is already running (guest pid %s holds %s); this copy exits",
                  args.vmdir.name, lock_holder(args.vmdir), LOCK_FILE)
        return 75
    with contextlib.suppress(FileNotFoundError):
        (args.vmdir / BOOT_FILE).unlink()  # this boot's check replaces the last one
    try:
        return Guest(args.vmdir, args.config).run()
    except Exception:
        log.exception("guest crashed")
        return 70


if __name__ == "__main__":
    sys.exit(main())
