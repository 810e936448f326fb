"""What ``vmigrate sync`` loads before it does anything (issue 13 item 3: start-up).

Every command pays its interpreter's imports: the CLI imported every command's engine at
start, the cutover's, the lab's, the evidence archive's, for ``sync`` too (the CLI's import
0.25 -> 0.21 s here, best of 7, measured).  Each command module now imports what only its
own commands need when they run.  The heavy libraries of the notebooks and of vSphere never
load for a sync over SSH.  Runs the real CLI in a fresh interpreter; nothing here depends
on a host.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: never loaded by ``sync``: the notebooks' and audit views' libraries, vSphere's API
HEAVY = ("pandas", "matplotlib", "papermill", "nbformat", "IPython", "ipywidgets", "pyVmomi")
#: other commands' own modules
OTHERS = ("vmigrate_lib.engine.cutover", "vmigrate_lib.lab.lifecycle",
          "vmigrate_lib.audit.evidence")

PROGRAM = """
import json, runpy, sys
sys.argv = ["vmigrate", *json.loads(sys.argv[1])]
try:
    runpy.run_module("vmigrate_lib.faces.cli", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def loaded(*argv: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", PROGRAM, json.dumps(argv)], capture_output=True,
                       text=True, timeout=120, check=True)
    return set(json.loads(r.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [("sync", "--help"), ("preflight", "--help")])
def test_sync_loads_no_other_command_and_no_heavy_library(argv: tuple[str, ...]) -> None:
    """Before: engine.cutover, lab.lifecycle and audit.evidence loaded for every command."""
    mods = loaded(*argv)
    assert "vmigrate_lib.engine.preflight" in mods  # the command's own engine is there
    assert not {m for m in mods if m.split(".")[0] in HEAVY}, sorted(mods)
    assert not mods & set(OTHERS), sorted(mods & set(OTHERS))


def test_other_commands_still_find_their_modules() -> None:
    """The commands that need them load them when they run (``vmigrate lab status``)."""
    r = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "lab", "status",
                        "--root", "/nonexistent-vmigrate-lab"], capture_output=True,
                       text=True, timeout=120, check=False)
    assert "Error" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_lab_control_plane_loads_no_numpy() -> None:
    """A sync against lab hosts opens them (``control.lab``, ``lab.changes``) before its
    first cycle: that loaded numpy (0.1-0.3 s, ``python -X importtime``) for change maps a
    plain scan answers in milliseconds (tests/lab/test_ctk_scan.py).  Before: numpy loaded.
    A real host's control plane never loads the lab's."""
    r = subprocess.run([sys.executable, "-c", (
        "import sys, vmigrate_lib.faces.cli, vmigrate_lib.faces.cli_sync, vmigrate_lib.session, "
        "vmigrate_lib.control.lab, vmigrate_lib.lab.changes, vmigrate_lib.engine.cycle; "
        "print('numpy' in sys.modules)")], capture_output=True, text=True, timeout=120,
        check=True)
    assert r.stdout.strip() == "False"
