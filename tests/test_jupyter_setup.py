"""``python -m vmigrate_lib.faces.jupyter_setup``: the kernel and the JupyterLab settings.

Runs the real module (ipykernel writes a real kernelspec) into a temporary prefix, as
jupyter/install.sh and a wheel install do into theirs. JupyterLab reading the merged
file is proved by tests/browser (saveState on in a real JupyterLab); a real host adds
nothing here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"


def _setup(prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmigrate_lib.faces.jupyter_setup", "--prefix", str(prefix)],
        capture_output=True, text=True, timeout=120, check=False)


def _settings(prefix: Path) -> Path:
    return prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def test_installs_the_kernel_and_merges_the_settings_keeping_the_operators(tmp_path: Path) -> None:
    """The shipped saveState lands beside the operator's own settings, which stay; the
    kernel is named as the runbooks' kernelspec and runs this Python."""
    settings = _settings(tmp_path)
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({PLUGIN: {"other": 1},
                                    "@jupyterlab/apputils-extension:themes": {"theme": "dark"}}))
    proc = _setup(tmp_path)
    assert proc.returncode == 0, proc.stderr
    merged = json.loads(settings.read_text())
    assert merged[PLUGIN] == {"other": 1, "saveState": True}
    assert merged["@jupyterlab/apputils-extension:themes"] == {"theme": "dark"}
    spec = json.loads((tmp_path / "share/jupyter/kernels/vmigrate/kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    runbook = json.loads((Path(__file__).parent.parent / "runbooks/sync.ipynb").read_text())
    assert runbook["metadata"]["kernelspec"]["name"] == "vmigrate"
    assert _setup(tmp_path).returncode == 0  # a second run changes nothing
    assert json.loads(settings.read_text()) == merged


def test_unreadable_settings_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """Not JSON: exit 2, one line naming the file and what to do, no kernel, file as it was."""
    settings = _settings(tmp_path)
    settings.parent.mkdir(parents=True)
    settings.write_text("{not json")
    proc = _setup(tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and str(settings) in line and "fix or remove" in line, line
    assert settings.read_text() == "{not json"
    assert not (tmp_path / "share" / "jupyter" / "kernels").exists()
