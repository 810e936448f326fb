"""The ``vmigrate`` kernel keeps no IPython history, also when a runbook is run by hand.

A runbook's cells hold its parameters; IPython's history database
(``$IPYTHONDIR/profile_default/history.sqlite``, IPython docs "HistoryManager")
would keep a value pasted there for good.  ``vmigrate run`` passes the kernel
arguments itself (tests/runbooks/test_runbooks.py proves it); this proves the
installed kernelspec does the same for JupyterLab.  A real kernel from a real
kernelspec written by ``python -m vmigrate_lib.faces.jupyter_setup``; no host.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

MARKER = "pasted_by_mistake = 'Hunter2-S3cret'"


def test_hand_run_kernel_keeps_no_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.jupyter_setup",
                           "--prefix", str(tmp_path / "prefix")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    ipython_dir = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "prefix" / "share/jupyter/kernels")])
    km = KernelManager(kernel_name="vmigrate", kernel_spec_manager=ksm)
    km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(MARKER, timeout=60)
        assert reply["content"]["status"] == "ok"
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)  # a clean exit is when IPython writes its history
    rows: list[str] = []
    for db in ipython_dir.rglob("*.sqlite"):
        with sqlite3.connect(db) as con:
            if con.execute("select name from sqlite_master where name='history'").fetchone():
                rows += [r[0] for r in con.execute("select source from history")]
    assert rows == []
    assert not any("Hunter2" in p.read_bytes().decode("latin-1")
                   for p in ipython_dir.rglob("*") if p.is_file())
