"""Jupyter set-up for an environment vmigrate is installed in (a checkout or a wheel).

``python -m vmigrate_lib.faces.jupyter_setup`` installs the kernel the runbooks name
(``vmigrate``, running this Python, so a runbook imports the same vmigrate as the CLI)
and merges the JupyterLab settings vmigrate ships (package data
``vmigrate_lib.jupyter_settings``: widget state saved with hand-run notebooks) into
``<prefix>/share/jupyter/lab/settings/overrides.json``, and makes the environment's
Jupyter server keep sealed evidence read-only (:data:`SERVER_CONFIG`, see
:mod:`.jupyter_contents`) and expose JupyterLab's application to the page, through
which a runbook's last cell saves a hand run before archiving it (:mod:`.hand_run`).  ``jupyter/install.sh`` calls it, and a wheel install runs it
the same way: both read the settings through the package.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..errors import InputError, VmigrateError
from .papermill_runner import KERNEL_HISTORY_OFF, KERNEL_NAME

DISPLAY_NAME = "Python (vmigrate)"
SETTINGS_PACKAGE = "vmigrate_lib.jupyter_settings"
#: The server's contents manager: jupyter_server's own, with sealed evidence read-only;
#: and JupyterLab's application object on the page (``window.jupyterapp``), through which
#: a runbook's last cell saves the notebook before archiving a hand run (:mod:`.hand_run`).
SERVER_CONFIG: dict[str, dict[str, Any]] = {
    "ServerApp": {"contents_manager_class":
                  "vmigrate_lib.faces.jupyter_contents.SealedEvidenceContentsManager"},
    "LabApp": {"expose_app_in_browser": True},
}


def shipped_settings() -> dict[str, Any]:
    """The JupyterLab overrides vmigrate ships (plugin id -> settings)."""
    text = (files(SETTINGS_PACKAGE) / "overrides.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def settings_file(prefix: Path) -> Path:
    """Where JupyterLab reads the environment's setting overrides."""
    return prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def merged_lab_settings(prefix: Path) -> dict[str, Any]:
    """The prefix's overrides with the shipped ones merged in (other settings kept).

    A file that is not a JSON object is refused: it is the operator's, and a guess
    would lose their settings.
    """
    target = settings_file(prefix)
    current = _json_object(target, "JupyterLab settings")
    for plugin, values in shipped_settings().items():
        entry = current.setdefault(plugin, {})
        if not isinstance(entry, dict):
            raise InputError(f"JupyterLab settings {target}: {plugin!r} is not a JSON object",
                             hint=_HINT, path=str(target))
        entry.update(values)
    return current


def write_lab_settings(prefix: Path, settings: dict[str, Any]) -> Path:
    """Replace the overrides file atomically (a crash leaves the old one or the new one)."""
    return _write_json(settings_file(prefix), settings)


def server_config_file(prefix: Path) -> Path:
    """The environment's Jupyter server configuration (jupyter_server reads only extension
    switches from ``jupyter_server_config.d/``, so the setting goes into the file itself)."""
    return prefix / "etc" / "jupyter" / "jupyter_server_config.json"


def write_server_config(prefix: Path) -> Path:
    """Merge :data:`SERVER_CONFIG` into the file (other settings kept; a file that is not
    a JSON object is refused, as the lab settings are)."""
    target = server_config_file(prefix)
    current = _json_object(target, "Jupyter server settings", of_objects=tuple(SERVER_CONFIG))
    for section, values in SERVER_CONFIG.items():
        current.setdefault(section, {}).update(values)
    return _write_json(target, current)


_HINT = "fix or remove that file, then run this again"


def _json_object(target: Path, what: str, of_objects: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object in ``target`` (``{}`` when there is no file), whose keys
    ``of_objects`` hold objects where present; anything else is the operator's file and is
    refused: a guess would lose their settings."""
    if not target.exists():
        return {}
    try:
        loaded = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {what} {target}: {exc}", hint=_HINT,
                         path=str(target)) from exc
    if not isinstance(loaded, dict) or not all(
            isinstance(loaded.get(key, {}), dict) for key in of_objects):
        shape = "a JSON object of objects" if of_objects else "a JSON object"
        raise InputError(f"{what} {target} is not {shape}", hint=_HINT, path=str(target))
    return loaded


def _write_json(target: Path, data: dict[str, Any]) -> Path:
    """Replace ``target`` atomically (a crash leaves the old file or the new one).  Jupyter's
    settings are not secret: readable as the umask allows, as before."""
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, (json.dumps(data, indent=2) + "\n").encode("utf-8"), mode=0o666)
    return target


def install_kernel(prefix: Path) -> Path:
    """Install the ``vmigrate`` kernelspec (this Python) under ``prefix``; returns its folder."""
    proc = subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix),
         "--name", KERNEL_NAME, "--display-name", DISPLAY_NAME],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"ipykernel could not install the {KERNEL_NAME!r} kernel: {last}",
                         hint=f"check that ipykernel is installed for {sys.executable}",
                         prefix=str(prefix))
    folder = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME
    # no IPython history database, by hand as under vmigrate run: a runbook's cells hold
    # its parameters, and a value pasted there by mistake must not outlive the kernel
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    spec["argv"] = [*spec["argv"], *(a for a in KERNEL_HISTORY_OFF if a not in spec["argv"])]
    spec_file.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vmigrate_lib.faces.jupyter_setup",
        description="Install the vmigrate Jupyter kernel and JupyterLab settings.")
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix),
                        help="environment prefix (default: this Python's, %(default)s)")
    args = parser.parse_args(argv)
    try:
        merged = merged_lab_settings(args.prefix)  # refused before anything is written
        kernel = install_kernel(args.prefix)
        settings = write_lab_settings(args.prefix, merged)
        server = write_server_config(args.prefix)
    except VmigrateError as exc:
        print(f"vmigrate: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    print(f"kernel {KERNEL_NAME!r} installed in {kernel}; JupyterLab overrides in {settings}; "
          f"sealed evidence read-only in JupyterLab ({server})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
