"""Answer the vcsim peer's QueryChangedDiskAreas from real disk files and the lab's CBT.

Used as `vcsim -qcda-cmd "python qcda_lab.py --ds NAME=DIR ... [--page BYTES]"`.
A disk ``[NAME] folder/disk.vmdk`` is the flat file ``DIR/folder/disk-flat.vmdk``
(real data, written by the test) with the lab's change map beside it,
``DIR/folder/disk-ctk.bin`` (vmigrate_lib.lab.ctk.ChangeTracker; the test marks
its writes there). Without a change map the disk has no tracking.

- op "changeId" (at CreateSnapshot_Task with tracking on): advances the map
  (the snapshot's change id is the current one, later writes are a new
  generation) and remembers snapshot -> change id in ``disk-ctk.bin.snapshots.json``.
- op "query": ``"*"`` answers the allocated areas of the flat file
  (SEEK_DATA/SEEK_HOLE, 64 KiB aligned, as ESXi for thin disks); a change id
  answers ``ChangeTracker.changed(snapshot's id, since)``; an id of another
  epoch (or unknown) is an ``InvalidArgument changeId`` fault, as on ESXi.
  Answers cover ``--page`` bytes from startOffset (ESXi pages too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from vmigrate_lib.errors import ChangeIdInvalid, VmigrateError
from vmigrate_lib.lab.ctk import ChangeTracker
from vmigrate_lib.lab.disk import allocated_extents


def locate(file_name: str, roots: dict[str, Path]) -> tuple[Path, Path]:
    """``[ds] folder/disk.vmdk`` -> (flat file, change map)."""
    ds, _, rel = file_name.partition("]")
    base = roots[ds.lstrip("[").strip()] / rel.strip()
    stem = str(base)[: -len(".vmdk")]
    return Path(stem + "-flat.vmdk"), Path(stem + "-ctk.bin")


def _snapshots_file(ctk: Path) -> Path:
    return Path(str(ctk) + ".snapshots.json")


def answer(req: dict[str, Any], roots: dict[str, Path], page: int) -> tuple[dict[str, Any], int]:
    flat, ctk_file = locate(req["fileName"], roots)
    if req.get("op") == "changeId":
        if not ctk_file.exists():
            return {}, 0
        ctk = ChangeTracker(ctk_file)
        try:
            cid = ctk.advance()
            ctk.flush()
        finally:
            ctk.close()
        snaps_file = _snapshots_file(ctk_file)
        snaps = json.loads(snaps_file.read_text()) if snaps_file.exists() else {}
        snaps[req["snapshot"]] = cid
        snaps_file.write_text(json.dumps(snaps))
        return {"changeId": cid}, 0

    start, capacity, since = int(req["startOffset"]), int(req["capacity"]), req["changeId"]
    end = min(start + page, capacity)
    if since == "*":
        fd = os.open(flat, os.O_RDONLY)
        try:
            extents = allocated_extents(fd, min(os.fstat(fd).st_size, capacity))
        finally:
            os.close(fd)
    else:
        snaps_file = _snapshots_file(ctk_file)
        snaps = json.loads(snaps_file.read_text()) if snaps_file.exists() else {}
        snap_cid = snaps.get(req.get("snapshot") or "")
        if not ctk_file.exists() or snap_cid is None:
            return {"fault": "FileFault", "message": f"no change tracking for {req['fileName']}"}, 2
        ctk = ChangeTracker(ctk_file, writable=False)
        try:
            extents = ctk.changed(snap_cid, since, capacity)
        except ChangeIdInvalid as exc:
            return {"fault": "InvalidArgument", "invalidProperty": "changeId",
                    "message": exc.message}, 2
        except VmigrateError as exc:
            return {"fault": "InvalidArgument", "invalidProperty": "changeId",
                    "message": exc.message}, 2
        finally:
            ctk.close()
    areas = []
    for e_start, e_len in extents:
        lo, hi = max(start, e_start), min(end, e_start + e_len)
        if lo < hi:
            areas.append({"start": lo, "length": hi - lo})
    return {"startOffset": start, "length": end - start, "changedArea": areas}, 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ds", action="append", default=[], help="NAME=DIR")
    ap.add_argument("--page", type=int, default=1 << 20)
    ap.add_argument("--log", default="")
    args = ap.parse_args(argv)
    roots = {k: Path(v) for k, _, v in (d.partition("=") for d in args.ds)}
    req = json.load(sys.stdin)
    if args.log:
        with open(args.log, "a") as log:
            log.write(json.dumps(req) + "\n")
    out, rc = answer(req, roots, args.page)
    print(json.dumps(out))
    return rc


if __name__ == "__main__":
    sys.exit(main())
