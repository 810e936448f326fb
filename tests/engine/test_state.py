"""The workspace state is typed, versioned and checked, against real lab migrations.

Each test drives the ``vmigrate`` CLI on a real lab (guest processes, sparse
disks, snapshots, change tracking) and edits the workspace or the disks by hand
as an operator, another tool or a crash would.  What only a real ESXi host
would add: VMFS and its own file sizes; the workspace itself is local either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.state_watch import kill_sync_when
from tests.fsproof import files_equal
from vmigrate_lib.control.host import VMIGRATE_SNAPSHOT_PREFIX

MiB = 1 << 20
DATA = Path(__file__).parent / "data"


def _ws(lab) -> Path:
    return lab.workdir / "ws"


def _read_state(lab) -> dict:
    try:
        return json.loads((_ws(lab) / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _journal(lab, type_: str) -> list[dict]:
    out = []
    for line in (_ws(lab) / "journal.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("type") == type_:
            out.append(rec)
    return out


def _same(lab, name: str) -> bool:
    """Alice's disk file and Bob's copy hold the same bytes (chunked)."""
    return files_equal(lab.ds_dir("esx-a") / "alice" / name, lab.ds_dir("esx-b") / "alice" / name)


def _kill_mid_copy(lab, params: Path, kind: str, min_offset: int, below: int) -> dict:
    """Start ``vmigrate sync`` and SIGKILL it once a ``kind`` cycle checkpointed disk 2000
    at an offset in ``[min_offset, below)``: a crash in the middle of the copy."""
    def in_range(state: dict) -> bool:
        ip = state.get("in_progress") or {}
        x = (ip.get("checkpoints") or {}).get("2000", 0)
        return ip.get("kind") == kind and min_offset <= x < below and not ip.get("committed")

    return kill_sync_when(lab.workdir, params, 1, in_range, timeout=120)


# --- item 6: a state edited behind vmigrate's back ----------------------------------


def test_hand_edited_checkpoint_is_detected_and_the_disk_hash_compared(make_lab) -> None:
    """A delta killed mid-copy, its checkpoint raised by hand to the end of the disk:
    the resume rule skips everything above the real checkpoint, and a ``changed``
    certify (of the planned extents only) sees just the skipped blocks the guest
    happened to rewrite (before the fix: exit 1 here, "identical" when none was
    rewritten).  The digest shows the edit, the disk is hash-compared, and Bob's
    copy ends byte-identical to Alice.  (A real ESXi host changes nothing here: the state
    is local to vmigrate.)"""
    lab = make_lab(disk_sizes=(256 * MiB,), fill=1.0, rate_mb_s=20.0)
    params = lab.write_params(sync={"checkpoint_bytes": "1MiB", "certify": "changed"})
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    time.sleep(3.0)  # the guest dirties a large part of the disk: a long delta
    ip = _kill_mid_copy(lab, params, "delta", 2 * MiB, 128 * MiB)
    state_path = _ws(lab) / "state.json"
    data = json.loads(state_path.read_text())
    data["in_progress"]["checkpoints"]["2000"] = 256 * MiB  # "it was nearly done anyway"
    state_path.write_text(json.dumps(data, indent=2))

    lab.stop_guest()
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    cyc = _journal(lab, "cycle")[-1]
    assert cyc["resumed"] and cyc["disks"][0]["mode"] == "hash", cyc["disks"]
    assert "changed outside vmigrate" in cyc["disks"][0]["reason"]
    assert [c["detail"] for c in _journal(lab, "state_checked")
            if "outside vmigrate" in c["detail"]], "the edit is journaled"
    assert ip["checkpoints"]["2000"] < 128 * MiB
    assert _same(lab, "alice-flat.vmdk")
    assert not [s for s in lab.host().list_snapshots("alice")
                if s.name.startswith(VMIGRATE_SNAPSHOT_PREFIX)]


def test_edit_of_one_disk_marks_only_that_disk(make_lab) -> None:
    """Two disks; someone sets disk 2001's change id in ``state.json`` back to an
    earlier, still valid generation (the host accepts it, so nothing else would
    notice).  Only that disk's digest differs, so only disk 2001 is
    hash-compared; disk 2000 keeps its tracked delta."""
    lab = make_lab(power_on=False)
    params = lab.write_params()
    r = lab.cli("sync", "-p", str(params), "--cycles", "2")
    assert r.returncode == 0, r.stderr
    state_path = _ws(lab) / "state.json"
    data = json.loads(state_path.read_text())
    epoch, gen = data["disks"]["2001"]["change_id"].split("/")
    assert int(gen) >= 2
    data["disks"]["2001"]["change_id"] = f"{epoch}/{int(gen) - 1}"
    state_path.write_text(json.dumps(data, indent=2))
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    modes = {d["key"]: d["mode"] for d in _journal(lab, "cycle")[-1]["disks"]}
    assert modes == {2000: "tracked", 2001: "hash"}, modes
    notes = [c["detail"] for c in _journal(lab, "state_checked")]
    assert len(notes) == 1 and "disk(s) 2001 will be hash-compared" in notes[0], notes
    assert _same(lab, "alice-flat.vmdk") and _same(lab, "alice_1-flat.vmdk")


# --- bad state files: one line, exit 2, nothing changed ------------------------------


def _wrong_type(raw: bytes) -> bytes:
    data = json.loads(raw)
    data["cycles"] = "three"
    return json.dumps(data).encode()


def _bad_cutover(raw: bytes) -> bytes:
    data = json.loads(raw)
    data["cutover"] = {"attempt": 1, "status": "running", "steps": {"shutdown": "done"}}
    return json.dumps(data).encode()


def _newer(raw: bytes) -> bytes:
    data = json.loads(raw)
    data["version"] = 99
    return json.dumps(data).encode()


@pytest.mark.parametrize("damage, says", [
    (lambda raw: b"", "the file is empty"),
    (lambda raw: raw[: len(raw) // 2], "not JSON"),
    (lambda raw: b'{"cycles": 1,', "not JSON"),
    (_wrong_type, "state.cycles is 'three', not an integer"),
    (lambda raw: b"[]", "state is list, not an object"),
    (_bad_cutover, "cutover.steps[shutdown] is str, not an object"),
    (_newer, "written by a newer vmigrate (state version 99"),
], ids=["empty", "half", "torn", "wrong-type", "not-object", "cutover-step", "newer-version"])
def test_bad_state_file_is_one_line_exit_2_and_changes_nothing(make_lab, damage, says) -> None:
    """A truncated, empty, wrong-typed or newer ``state.json``: ``status`` and ``sync``
    each print one line naming the file and what to do, exit 2, and change nothing
    (no snapshot, no journal line, the file as it was)."""
    lab = make_lab(power_on=False)
    params = lab.write_params()
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    state_path = _ws(lab) / "state.json"
    bad = damage(state_path.read_bytes())
    state_path.write_bytes(bad)
    journal = (_ws(lab) / "journal.jsonl").read_bytes()
    for cmd in (["status"], ["sync", "--cycles", "1"], ["certify"]):
        r = lab.cli(*cmd, "-p", str(params))
        assert r.returncode == 2, (cmd, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert str(state_path) in lines[0] and says in lines[0], lines[0]
        assert "restore" in lines[0] or "run the vmigrate that wrote it" in lines[0]
    assert state_path.read_bytes() == bad
    assert (_ws(lab) / "journal.jsonl").read_bytes() == journal
    assert lab.host().list_snapshots("alice") == []


def test_version_1_state_written_by_the_released_code_is_migrated(make_lab) -> None:
    """``data/state-v1.json`` is a real ``state.json`` written by vmigrate at 869da05
    (lab, two cycles, version 1, no digest).  It loads, is migrated to the
    current version (journaled once), and the next cycle proves the copy by
    hashes (its change ids belong to another lab) and ends certified identical."""
    lab = make_lab(power_on=False)
    params = lab.write_params(sync={"certify": "full"})
    _ws(lab).mkdir()
    shutil.copy(DATA / "state-v1.json", _ws(lab) / "state.json")
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    state = _read_state(lab)
    assert state["version"] == 2 and state["migration_id"] == "fc73fd613abb"
    assert state["cycles"] == 3 and state["digest"]
    notes = [c["detail"] for c in _journal(lab, "state_checked")]
    assert notes == ["state version 1 migrated to 2"]
    cyc = _journal(lab, "cycle")[-1]
    assert cyc["kind"] == "delta" and {d["mode"] for d in cyc["disks"]} == {"hash"}
    assert cyc["certify"]["result"] == "identical"
    assert _same(lab, "alice-flat.vmdk") and _same(lab, "alice_1-flat.vmdk")
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")  # no note the second time
    assert r.returncode == 0, r.stderr
    assert len(_journal(lab, "state_checked")) == 1


# --- item 7: a seed whose certify failed heals ----------------------------------------


@pytest.mark.parametrize("heal", [["sync", "--cycles", "1"], ["certify", "--repair"]])
def test_seed_whose_certify_failed_heals(make_lab, heal: list[str]) -> None:
    """A seed killed mid-copy; a block already copied goes bad on B (a media error,
    another tool); the resumed seed's full certify finds it (exit 1).  The next
    ``sync`` or ``certify --repair`` must hash-compare the disk and heal it, not
    resume at the end of the disk and copy nothing forever.  (On ESXi the bad
    block would come from the datastore; the engine's decisions are the same.)"""
    lab = make_lab(disk_sizes=(128 * MiB,), fill=1.0, power_on=False)
    params = lab.write_params(sync={"checkpoint_bytes": "2MiB"})
    ip = _kill_mid_copy(lab, params, "seed", 16 * MiB, 96 * MiB)
    copy = lab.ds_dir("esx-b") / "alice" / "alice-flat.vmdk"
    with copy.open("r+b") as f:  # below the checkpoint: the resume will not rewrite it
        f.seek(4 * MiB)
        f.write(b"\xde\xad" * 2048)
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 1 and "certify found differences" in r.stderr, r.stderr
    assert ip["checkpoints"]["2000"] >= 16 * MiB

    r = lab.cli(*heal, "-p", str(params))
    assert r.returncode == 0, r.stderr
    cyc = _journal(lab, "cycle")[-1]
    assert cyc["kind"] == "seed" and cyc["disks"][0]["mode"] == "hash", cyc["disks"]
    assert 0 < cyc["disks"][0]["bytes_changed"] <= 1 * MiB  # only the bad block moved
    assert cyc["certify"]["result"] == "identical"
    assert _same(lab, "alice-flat.vmdk")
    state = _read_state(lab)
    assert state["seeded"] and "untrusted" not in state["disks"]["2000"]


# --- item 8: hashing follows the configured capacity ----------------------------------


def test_flat_file_longer_than_capacity_certifies_and_hash_compares(make_lab) -> None:
    """Alice's flat file is 1 MiB longer than her configured capacity (a crash
    between growing the file and saving the configuration; on ESXi the descriptor
    says the size).  Full certify and hash-compare digest the capacity only, on
    both sides, and work; the copy stays at the capacity."""
    lab = make_lab(disk_sizes=(32 * MiB,), power_on=False)
    params = lab.write_params(sync={"certify": "full", "change_tracking": "hash"})
    flat = lab.ds_dir("esx-a") / "alice" / "alice-flat.vmdk"
    with flat.open("r+b") as f:
        f.seek(32 * MiB)
        f.write(b"\x01" * MiB)  # data beyond the capacity: not part of the disk
    r = lab.cli("sync", "-p", str(params), "--cycles", "2")
    assert r.returncode == 0, r.stderr
    cyc = _journal(lab, "cycle")[-1]
    assert cyc["disks"][0]["mode"] == "hash" and cyc["certify"]["result"] == "identical"
    r = lab.cli("certify", "-p", str(params))
    assert r.returncode == 0, r.stderr
    copy = lab.ds_dir("esx-b") / "alice" / "alice-flat.vmdk"
    assert copy.stat().st_size == 32 * MiB
    with flat.open("rb") as a, copy.open("rb") as b:
        assert a.read(32 * MiB) == b.read()


# --- items 11 and 3: the journal and the workspace's files ----------------------------


def test_journal_torn_last_line_does_not_swallow_the_next_record(make_lab) -> None:
    """A crash tore the journal's last record (half a line, no newline).  The next
    run's first record (its preflight) starts on a line of their own instead of
    being glued onto the torn one and lost with it; only the torn line is skipped."""
    lab = make_lab(power_on=False)
    params = lab.write_params()
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    jpath = _ws(lab) / "journal.jsonl"
    raw = jpath.read_bytes()
    jpath.write_bytes(raw + b'{"ts": 1.0, "type": "cycle", "number": 9')  # torn
    r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    assert r.returncode == 0, r.stderr
    assert len(_journal(lab, "preflight")) == 2  # the first record after the tear
    numbers = [c["number"] for c in _journal(lab, "cycle")]
    assert numbers == [1, 2], numbers
    assert jpath.read_bytes().count(b'"number": 9\n') == 1  # the torn line, ended


_SHORT_WRITE = """
import resource, signal, sys
from pathlib import Path
from vmigrate_lib.engine.workspace import Journal
from vmigrate_lib.errors import VmigrateError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = Path(sys.argv[1])
limit = path.stat().st_size + 40
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    Journal(path).append("cycle", note="x" * 200)
except VmigrateError as exc:
    print("ERROR", exc.one_line())
    sys.exit(3)
print("OK")
"""


def test_journal_short_write_fails_loudly(tmp_path: Path) -> None:
    """A write the kernel cuts short is continued, and a write that cannot go on fails
    with one clear error instead of leaving a torn record behind silently.  The
    short write is real: under RLIMIT_FSIZE, write(2) writes up to the limit and
    returns that count, and the next write fails with EFBIG (man 2 write, man 2
    setrlimit; SIGXFSZ ignored).  A full datastore or NFS share behaves alike."""
    jpath = tmp_path / "journal.jsonl"
    jpath.write_text('{"ts": 1.0, "type": "preflight"}\n')
    r = subprocess.run([sys.executable, "-c", _SHORT_WRITE, str(jpath)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "could not write" in r.stdout and "of" in r.stdout and "bytes written" in r.stdout


def test_workspace_folder_0700_and_files_0600(make_lab) -> None:
    """The workspace names hosts, VMs and change ids: its folder is made 0700 and
    state, journal, lock and temporary files 0600, even under a permissive umask."""
    lab = make_lab(power_on=False)
    params = lab.write_params(sync={"checkpoint_bytes": "1MiB"})
    old = os.umask(0o002)
    try:
        r = lab.cli("sync", "-p", str(params), "--cycles", "1")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    ws = _ws(lab)
    assert ws.stat().st_mode & 0o777 == 0o700
    for name in ("state.json", "journal.jsonl", ".lock"):
        assert (ws / name).stat().st_mode & 0o777 == 0o600, name
    assert not [p.name for p in ws.iterdir() if ".tmp-" in p.name]
