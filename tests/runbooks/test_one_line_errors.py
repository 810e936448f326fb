"""A vmigrate error in a runbook cell is its one line, not 40-60 lines of library frames,
and the dashboard shows the failure.

Before (issue 14 item 9, jupyter-ux note 10): the failing cell's output was the good
line followed by the whole traceback through the engine and the session code.  Now a
custom IPython exception handler (``InteractiveShell.set_custom_exc``) shows the
error's own line; the kernel still reports the error by name, so papermill stops and
the runner's exit code is unchanged.  Real lab, real kernel under papermill; no ESXi.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat


def test_unknown_vm_is_one_line(lab: Path, params: dict[str, Any]) -> None:
    from vmigrate_lib.faces.papermill_runner import run_runbook

    res = run_runbook("sync", {**params, "vm": "nobody"}, cwd=lab)
    assert res.status == "failed" and res.exit_code == 2
    assert res.error and res.error["error"] == "VmNotFound"
    nb = nbformat.read(res.folder / "sync.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1, errors
    tb = errors[0]["traceback"]
    assert len(tb) == 1 and tb[0].startswith("VmNotFound: ") and "nobody" in tb[0], tb
    assert "site-packages" not in tb[0] and "File " not in tb[0]
    # the dashboard says it failed (before: it stayed "waiting" after a failed open)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    html = [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]
    assert any("FAILED</b>: VmNotFound: " in v for v in html), html
