"""Answer the vcsim peer's QueryChangedDiskAreas from a JSON file.

Used as `vcsim -qcda-cmd "python qcda_json.py SOURCE.json"`. The simulator
writes one request as JSON on stdin and reads one answer from stdout.

Request (op "query"):
    {"op": "query", "vm": name, "vmUuid": .., "vmMoref": .., "snapshot": moref|null,
     "deviceKey": 2000, "startOffset": 0, "changeId": "*", "fileName": .., "capacity": bytes}
Request (op "changeId", at CreateSnapshot_Task when change tracking is on):
    {"op": "changeId", "vm": .., "vmUuid": .., "snapshot": moref, "deviceKey": .., ...}

SOURCE.json (written by the test; missing keys have defaults):
    {"pageLength": 1048576,              # bytes of disk covered per answer
     "changeId": "cid-1",                # answer to op "changeId" (else no answer)
     "invalidChangeIdFault": "InvalidArgument",   # or "FileFault"
     "extents": {"*": [[start, length], ...], "cid-1": [[start, length], ...]}}
"extents" may instead map deviceKey (as a string) to such a table.

Answer: {"startOffset": s, "length": n, "changedArea": [{"start": .., "length": ..}]}
covering [s, s+n) with the extents clipped to it; the caller pages on from s+n
until the disk's capacity, as with ESXi. An unknown change id prints a fault
marker {"fault": .., "invalidProperty": "changeId", "message": ..} and exits 2.
Every request is appended to SOURCE.json + ".requests.jsonl".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def answer(req: dict[str, Any], src: dict[str, Any]) -> tuple[dict[str, Any], int]:
    if req.get("op") == "changeId":
        if src.get("changeId"):
            return {"changeId": src["changeId"]}, 0
        return {}, 0

    extents = src.get("extents", {})
    if str(req["deviceKey"]) in extents:
        extents = extents[str(req["deviceKey"])]
    change_id = req["changeId"]
    if change_id not in extents:
        return {
            "fault": src.get("invalidChangeIdFault", "InvalidArgument"),
            "invalidProperty": "changeId",
            "message": f"invalid change id {change_id!r} for disk {req['deviceKey']}",
        }, 2

    start = int(req["startOffset"])
    capacity = int(req["capacity"])
    length = min(int(src.get("pageLength", 1 << 20)), capacity - start)
    end = start + length
    areas = []
    for e_start, e_len in sorted(extents[change_id]):
        lo, hi = max(start, e_start), min(end, e_start + e_len)
        if lo < hi:
            areas.append({"start": lo, "length": hi - lo})
    return {"startOffset": start, "length": length, "changedArea": areas}, 0


def main() -> int:
    source = Path(sys.argv[1])
    req = json.load(sys.stdin)
    with open(str(source) + ".requests.jsonl", "a") as log:
        log.write(json.dumps(req) + "\n")
    out, rc = answer(req, json.loads(source.read_text()))
    print(json.dumps(out))
    return rc


if __name__ == "__main__":
    sys.exit(main())
