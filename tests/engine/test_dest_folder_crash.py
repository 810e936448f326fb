"""A sync killed between creating Bob's folder and writing its owner marker resumes.

The owner marker is what lets a migration write into a destination folder
(never into one it did not make).  Before, a crash right after ``makedirs``
left an empty folder without a marker, and every later ``sync`` was refused
with "already exists".  Now a marker naming the migration is written first,
beside the folder (``.<folder>.vmigrate-owner.json``), so the next run knows
the folder is its own.

Real vSphere keeps no owner for a datastore folder (a folder is just a
directory on VMFS/NFS; only a running VM's open files carry locks, the
``.lck`` files of VMware's "lock files" documentation), so vmigrate's marker is
its own rule and this test
proves it on a real data-plane agent.  Only a real ESXi shows whether its
``/vmfs/volumes`` file operations (mkdir, rename) behave the same; VMFS is a
POSIX-like file system for them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

from vmigrate_lib.engine.context import OWNER_MARKER

#: ``vmigrate sync`` that SIGKILLs itself when it is about to write the owner
#: marker inside Bob's folder: the folder exists, the marker does not.  The hook
#: lives in this script (a wrapped data-plane method), not in the product.
_KILLED_SYNC = textwrap.dedent(
    """
    import os, signal, sys
    from vmigrate_lib.dataplane.client import AgentDatastore
    from vmigrate_lib.faces import cli

    real = AgentDatastore.write_file

    def write_file(self, path, data, exclusive=False):
        if path == "alice/{marker}":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, path, data, exclusive)

    AgentDatastore.write_file = write_file
    sys.exit(cli.main(sys.argv[1:]))
    """
).format(marker=OWNER_MARKER)


def test_sync_killed_before_owner_marker_resumes(make_lab) -> None:
    """Killed after makedirs, before the marker: the re-run adopts its folder and seeds.

    Proves: the folder the killed run made is recognised as this migration's
    (not refused), the marker it then writes names this migration, and the
    copy completes and certifies.
    """
    lab = make_lab()
    params = lab.write_params(sync={"certify": "full"})
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_SYNC, "-q", "sync", "-p", str(params)],
        cwd=lab.workdir, capture_output=True, text=True, timeout=120, check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = lab.ds_dir("esx-b") / "alice"
    assert folder.is_dir() and not (folder / OWNER_MARKER).exists()  # the crash window

    r = lab.cli("-q", "sync", "-p", str(params))
    assert r.returncode == 0, r.stderr
    state = json.loads((lab.workdir / "ws" / "state.json").read_text())
    marker = json.loads((folder / OWNER_MARKER).read_text())
    assert marker["migration_id"] == state["migration_id"]
    assert [p.name for p in lab.ds_dir("esx-b").iterdir() if p.name.startswith(".")] == []
    journal = [json.loads(line) for line in (lab.workdir / "ws" / "journal.jsonl").open()]
    cycle = [c for c in journal if c["type"] == "cycle"][-1]
    assert cycle["certify"]["result"] == "identical"


def test_someone_elses_empty_folder_is_still_refused(make_lab) -> None:
    """An empty folder this migration did not make (no marker of ours beside it) stays refused.

    Proves the adoption above needs this migration's own pending marker: an
    empty folder alone is not proof of anything.
    """
    lab = make_lab()
    (lab.ds_dir("esx-b") / "alice").mkdir()
    params = lab.write_params()
    r = lab.cli("-q", "sync", "-p", str(params))
    assert r.returncode == 2 and "[datastore1] alice already exists" in r.stderr
    assert list((lab.ds_dir("esx-b") / "alice").iterdir()) == []
