"""pip and conda users get the same dependencies; the CLI entry point exists."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

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


def test_engine_never_imports_pyvmomi_or_paramiko() -> None:
    """The layering rule, checked on the source: the engine knows only the interfaces."""
    for path in (ROOT / "vmigrate_lib" / "engine").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(pyVmomi|pyVim|paramiko)", text, re.M), path
