"""A copy written by something else between cycles is caught, read whole and mended.

Alice is off, so no cycle has anything to copy; then bytes of Bob's copy change (as when
Bob is powered on by hand, or a tool writes the file).  Before: the next cycle used the
lab's tracked changes (none) and a "changed" certify (nothing to hash), said "identical",
and the stray bytes went on to the cutover.  Now each committed cycle records the copy's
modification time (stat, st_mtime_ns), the next cycle compares it, marks the disk
untrusted, hash-compares it whole and rewrites what differs.

Real lab disks, the real CLI.  What only a real ESXi host shows: how VMFS keeps a flat
file's mtime (POSIX stat(2) through the host's userworld; a running VM's writes update it,
and its resolution may be coarser than a nanosecond: two writes within it look like one).
"""

from __future__ import annotations

import json
from typing import Any

MiB = 1 << 20


def test_a_copy_written_between_cycles_is_read_whole_and_mended(make_lab: Any) -> None:
    lab = make_lab(disk_sizes=(8 * MiB,), power_on=False)
    params = lab.write_params(dest_name="bob")
    r = lab.cli("sync", "-p", str(params), "--cycles", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    alice = lab.ds_dir("esx-a") / "alice" / "alice-flat.vmdk"
    bob = lab.ds_dir("esx-b") / "bob" / "bob-flat.vmdk"
    assert bob.read_bytes() == alice.read_bytes()
    with open(bob, "r+b") as f:
        f.seek(5 * MiB + 123)
        f.write(b"\xde\xad\xbe\xef" * 16)
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "was modified after cycle 2 wrote it" in r.stdout + r.stderr, r.stdout + r.stderr
    assert bob.read_bytes() == alice.read_bytes()
    records = [json.loads(x) for x in (lab.workdir / "ws" / "journal.jsonl").read_text()
               .splitlines()]
    (flagged,) = [x for x in records if x["type"] == "destination_modified"]
    assert flagged["disk"] == 2000 and flagged["mtime_ns"] > flagged["committed_mtime_ns"]
    last = [x for x in records if x["type"] == "cycle"][-1]
    assert last["disks"][0]["mode"] == "hash" and last["bytes_changed"] > 0, last["disks"]
    # the next cycle trusts the copy again: nothing to read whole, nothing flagged
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0 and "modified after" not in r.stdout + r.stderr
    records = [json.loads(x) for x in (lab.workdir / "ws" / "journal.jsonl").read_text()
               .splitlines()]
    assert sum(x["type"] == "destination_modified" for x in records) == 1
