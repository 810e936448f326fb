"""The CLI's exit skips the interpreter's final garbage collections.

After a command's last step (journal and state fsynced, agents told to quit) the
interpreter's finalization used to collect every object the command made, module by
module: 0.37-0.48 s of a ``vmigrate sync``'s wall time at load 16-18 on this machine
(bench/seed_timeline.py: from the end of ``main`` to the process's exit), against
0.09-0.11 s with ``gc.freeze()`` as the last exit handler (Python's gc documentation: frozen
objects are ignored by all future collections).  Here a real interpreter runs the CLI's
``main`` and a handler registered before it (so run after every other, atexit being last in,
first out) reads ``gc.get_freeze_count()``: objects were frozen before finalization began.
No timing is asserted; what only a loaded host shows is how much time this saves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import atexit, gc
atexit.register(lambda: print("frozen", gc.get_freeze_count(), flush=True))
from vmigrate_lib.faces.cli import main
raise SystemExit(main(["status", "-p", {params!r}]))
"""


def test_objects_are_frozen_before_the_interpreter_finalizes(tmp_path: Path) -> None:
    """Before: ``frozen 0`` (nothing frozen: the final collections walked everything)."""
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(params=str(REPO / "examples" / "lab.yaml"))],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no migration in workspace" in out.stdout
    frozen = int(out.stdout.split("frozen")[-1].split()[0])
    assert frozen > 1000, out.stdout
