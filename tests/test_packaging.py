"""pip and conda users get the same dependencies; the CLI entry point exists; the wheel's
package list is the tree's."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: conda-forge names that differ from PyPI's
CONDA_NAMES = {"python-xxhash": "xxhash", "blake3-py": "blake3", "pyyaml": "pyyaml"}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert m, spec
    return m.group(1).lower(), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = dict(_split(d) for d in project["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = {}
    for d in env["dependencies"]:
        if isinstance(d, str):
            name, ver = _split(d)
            if name in ("python", "pip"):
                continue
            conda_deps[CONDA_NAMES.get(name, name)] = ver
    assert conda_deps == pip_deps


def test_cli_entry_point_and_help() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["vmigrate"] == "vmigrate_lib.faces.cli:main"
    out = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "--help"],
                         capture_output=True, text=True, check=True)
    for command in ("preflight", "sync", "certify", "status", "lab"):
        assert command in out.stdout


#: What the engine must never load: the implementations behind its interfaces.
FORBIDDEN_IN_ENGINE = ("paramiko", "pyVmomi", "pyVim", "vmigrate_lib.control.vsphere",
                       "vmigrate_lib.dataplane.ssh", "vmigrate_lib.lab")

ENGINE_IMPORTS = """
import importlib, json, pkgutil, sys
import vmigrate_lib.engine as engine
names = sorted(m.name for m in pkgutil.iter_modules(engine.__path__, "vmigrate_lib.engine."))
for name in names:
    importlib.import_module(name)
forbidden = json.loads(sys.argv[1])
print(json.dumps({"modules": names, "loaded": sorted(
    m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))}))
"""


def test_engine_never_imports_an_implementation() -> None:
    """The layering rule, checked on what Python really loads: a fresh interpreter imports
    every ``vmigrate_lib.engine.*`` module, and none of paramiko, pyVmomi/pyVim, the vSphere
    control plane, the SSH data plane or the lab is in ``sys.modules`` afterwards (a source
    grep missed ``from ..dataplane.ssh import ...`` and any import through another module).
    Pure Python; says nothing about a real host."""
    import json

    out = subprocess.run([sys.executable, "-c", ENGINE_IMPORTS, json.dumps(FORBIDDEN_IN_ENGINE)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    seen = json.loads(out.stdout)
    assert "vmigrate_lib.engine.cutover" in seen["modules"] and len(seen["modules"]) > 10
    assert seen["loaded"] == [], f"the engine loads {seen['loaded']}"


def test_every_package_and_the_package_data_ship(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyproject.toml lists its packages (a subpackage missing from the list would be left
    out of the wheel); runbooks/ and jupyter/lab/settings/ are mapped in as package data and
    this (editable) install reads them where they are. tests/test_wheel.py proves the wheel."""
    from importlib.resources import files

    from vmigrate_lib.faces.papermill_runner import RUNBOOKS_ENV, runbooks_dir

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped: dict[str, str] = tool["package-dir"]
    tree = {".".join(p.parent.relative_to(ROOT).parts)
            for p in (ROOT / "vmigrate_lib").rglob("__init__.py")}
    missing = sorted((tree | set(mapped)) - set(tool["packages"]))
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert set(tool["packages"]) == tree | set(mapped)
    for folder in mapped.values():  # editable installs map regular packages only
        assert (ROOT / folder / "__init__.py").is_file(), folder
    monkeypatch.delenv(RUNBOOKS_ENV, raising=False)
    assert runbooks_dir().resolve() == ROOT / "runbooks"
    settings = files("vmigrate_lib.jupyter_settings") / "overrides.json"
    assert Path(str(settings)).resolve() == ROOT / "jupyter" / "lab" / "settings" / "overrides.json"
