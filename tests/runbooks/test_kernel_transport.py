"""The runner's kernel starts without ipykernel's "running over TCP without encryption"
warning (issue 14 item 9: it was a red stderr block in every notebook that ran a
runbook, e.g. the rehearsal walkthrough).  The kernel uses jupyter_client's ``ipc``
transport (``ipykernel/kernelapp.py`` warns only for ``tcp`` without CurveZMQ keys).
A real kernel under papermill, in a child process whose stderr is read; a failing run
(no such VM) is enough to start and stop the kernel.  No ESXi needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def test_no_tcp_warning_from_the_runner_kernel(lab: Path, params: dict[str, Any]) -> None:
    (lab / "params.yaml").write_text(yaml.safe_dump({**params, "vm": "nobody"}))
    proc = subprocess.run(
        [sys.executable, "-m", "vmigrate_lib.faces.cli", "run", "sync",
         "--params", str(lab / "params.yaml")],
        capture_output=True, text=True, timeout=300, cwd=lab, env=dict(os.environ), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # VmNotFound: the kernel ran
    assert "nobody" in proc.stdout + proc.stderr
    assert "without encryption" not in proc.stderr + proc.stdout, proc.stderr
