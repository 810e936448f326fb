"""What a command over SSH loads before its first byte (issue 13 item 3).

A fresh interpreter imports the CLI and the SSH data plane, as ``vmigrate sync`` over SSH
does, and must not load the notebook and plotting stack (pandas, matplotlib, papermill,
nbformat, IPython, ipywidgets), pyVmomi, nor invoke: paramiko.config imports invoke only for
``Match exec`` in ssh_config files, which vmigrate never reads, and invoke pulls in
unittest.mock and asyncio (0.15-0.25 s of each command, measured here with ``python -X
importtime``).  Before: invoke, unittest and asyncio were loaded.  ``import invoke`` must still
work afterwards (the data plane only hides it while paramiko loads).  paramiko itself loads
at its first use, not with the data plane (before: with it).  Nothing here needs a real host.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "matplotlib", "papermill", "nbformat", "IPython", "ipywidgets", "pyVmomi",
         "invoke", "unittest", "asyncio")

SCRIPT = f"""
import json, sys
import vmigrate_lib.faces.cli
import vmigrate_lib.dataplane.ssh
ssh_alone = "paramiko" in sys.modules
from vmigrate_lib.dataplane.ssh.connection import paramiko as lazy
lazy.Transport  # the first use loads paramiko
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({list(HEAVY)!r}))
import invoke  # still importable by anyone else in the process
import paramiko.config
print(json.dumps({{"loaded": loaded, "invoke": invoke.__name__, "ssh_alone": ssh_alone,
                   "paramiko_invoke": paramiko.config.invoke is None}}))
"""


def test_sync_over_ssh_loads_no_heavy_module() -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       check=True, timeout=120)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [], out
    assert out["invoke"] == "invoke" and out["paramiko_invoke"], out
    # paramiko loads at its first use, not with the data plane: a command whose agents
    # come from a connection keeper never loads it (~0.1 s, dataplane/ssh/paramiko_lazy.py)
    assert out["ssh_alone"] is False, out
