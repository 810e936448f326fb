"""One atomic writer (``vmigrate_lib/atomicfile.py``) for the workspace, the lab and the evidence.

Each writer's file is rewritten while the kernel refuses to let it grow (a real
short write: under RLIMIT_FSIZE, write(2) writes up to the limit and returns that
count, and the next write fails with EFBIG; man 2 write, man 2 setrlimit; SIGXFSZ
ignored).  A full datastore, quota or NFS share fails the same way.  The old file
must stay exactly as it was and no temporary file may be left behind.

Before the one writer: the workspace's ``state.json`` writer left its temporary
file in the workspace, and the evidence writer truncated the file it replaced
(a torn manifest).  A real ESXi host plays no part here: these are files on the
machine running vmigrate.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmigrate_lib.atomicfile import TMP_MARK, write_atomic
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.errors import PartialWrite

#: argv: writer folder file; rewrites ``file`` with 4 KiB through ``writer`` under a
#: file size limit of 100 bytes, prints the error it got.
_REWRITE = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
writer, folder, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
big = {"pad": "x" * 4096}
if writer == "workspace":
    from vmigrate_lib.engine.workspace import Workspace
    ws = Workspace(folder)
    ws.load()
    ws.state.identity["pad"] = big["pad"]
    write = ws.save
elif writer == "lab":
    from vmigrate_lib.lab.layout import atomic_write_json
    write = lambda: atomic_write_json(folder / name, big)
elif writer == "evidence":
    from vmigrate_lib.audit.evidence import write_manifest
    for i in range(8):  # a manifest line each: more than the limit
        (folder / f"notebook-{i}.ipynb").write_text("x")
    write = lambda: write_manifest(folder)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
try:
    write()
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
print("OK")
"""


def rewrite_under_limit(writer: str, folder: Path, name: str) -> str:
    r = subprocess.run([sys.executable, "-c", _REWRITE, writer, str(folder), name],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, (r.stdout, r.stderr)
    return r.stdout


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TMP_MARK in p.name or p.name.endswith(".tmp"))


def test_workspace_state_survives_a_failed_save(tmp_path: Path) -> None:
    ws_root = tmp_path / "ws"
    Workspace(ws_root).init({"vm": "alice"})
    before = (ws_root / "state.json").read_bytes()
    out = rewrite_under_limit("workspace", ws_root, "state.json")
    assert out.startswith("OperationError could not write") and "bytes written" in out, out
    assert (ws_root / "state.json").read_bytes() == before
    assert leftovers(ws_root) == []  # before: .state.json.tmp-<pid>-<thread> stayed


def test_lab_json_survives_a_failed_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_text('{"alice": "ds1"}\n')
    out = rewrite_under_limit("lab", tmp_path, path.name)
    assert out.startswith("PartialWrite") and "File too large" in out, out
    assert path.read_text() == '{"alice": "ds1"}\n' and leftovers(tmp_path) == []


def test_evidence_manifest_survives_a_failed_reseal(tmp_path: Path) -> None:
    """Before: the manifest was truncated in place, then the write failed (a torn seal)."""
    manifest = tmp_path / "MANIFEST.sha256"
    old = "0" * 64 + "  notebook.ipynb\n"
    manifest.write_text(old)
    out = rewrite_under_limit("evidence", tmp_path, manifest.name)
    assert out.startswith("EvidenceError cannot seal evidence"), out
    assert manifest.read_text() == old and leftovers(tmp_path) == []


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_mode_is_0600_unless_told_and_the_umask_only_narrows(tmp_path: Path, umask: None) -> None:
    os.umask(0)
    write_atomic(tmp_path / "a", b"1")
    write_atomic(tmp_path / "b", b"1", mode=0o644)
    os.umask(0o077)
    write_atomic(tmp_path / "c", b"1", mode=0o644)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a": 0o600, "b": 0o644, "c": 0o600}


def test_a_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        write_atomic(tmp_path / "link", b"secret")
    assert target.read_text() == "keep" and (tmp_path / "link").is_symlink()
    assert leftovers(tmp_path) == []


def test_readers_see_the_old_file_or_the_new_never_a_mix(tmp_path: Path) -> None:
    """Two threads rewrite one file with two different 256 KiB JSON bodies while this
    thread reads it: every read parses and is one of the two (no torn or empty read)."""
    path = tmp_path / "state.json"
    bodies = [json.dumps({"who": w, "pad": w * (256 * 1024)}).encode() for w in "ab"]
    write_atomic(path, bodies[0])
    stop = threading.Event()
    errors: list[BaseException] = []

    def rewrite(body: bytes) -> None:
        try:
            while not stop.is_set():
                write_atomic(path, body)
        except BaseException as exc:  # shown by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=rewrite, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    seen: set[str] = set()
    try:
        for _ in range(300):
            seen.add(json.loads(path.read_bytes())["who"])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert seen <= {"a", "b"} and seen
    assert leftovers(tmp_path) == []


def test_partial_write_is_an_oserror_saying_how_far_it_got() -> None:
    """Code catching file-system errors (the lab's snapshot cleanup catches OSError)
    still catches a short write."""
    exc = PartialWrite(27, "/x", 100, 4096)
    assert isinstance(exc, OSError) and exc.errno == 27 and exc.filename == "/x"
    assert (exc.written, exc.total) == (100, 4096)
