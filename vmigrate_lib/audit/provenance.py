"""What an archive records about its origin, and what it must never hold.

Provenance (the runbook's commit and checksum, package versions) makes a run
reproducible; redaction makes sure no value of a referenced secret reaches any
archived file, whatever printed it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .evidence import MANIFEST, sha256_file

REDACTED = "[REDACTED]"
_PACKAGES = ("vmigrate", "papermill", "nbclient", "nbconvert", "nbformat", "ipykernel",
             "ipywidgets", "jupyter_client", "pandas", "matplotlib", "PyYAML", "pyvmomi",
             "paramiko")


def secret_refs(params: Any) -> dict[str, str]:
    """``{env var name: value}`` of every ``*_env`` reference in the parameters that is set."""
    found: dict[str, str] = {}

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if str(k).endswith("_env") and isinstance(v, str) and v:
                    secret = os.environ.get(v, "")
                    if len(secret) >= 4:
                        found[v] = secret
                else:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(params)
    return found


def redact(folder: Path, secrets: Mapping[str, str]) -> dict[str, int]:
    """Replace secret values in every file (raw and JSON-escaped); return counts per file."""
    counts: dict[str, int] = {}
    needles: list[bytes] = []
    for value in secrets.values():
        needles.append(value.encode())
        needles.append(json.dumps(value)[1:-1].encode())
    needles = sorted(set(needles), key=len, reverse=True)
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name == MANIFEST:
            continue
        data = p.read_bytes()
        n = sum(data.count(x) for x in needles)
        if not n:
            continue
        for x in needles:
            data = data.replace(x, REDACTED.encode())
        p.write_bytes(data)
        counts[p.relative_to(folder).as_posix()] = n
    return counts


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(runbook: Path) -> dict[str, Any]:
    """The commit that last changed the runbook, HEAD, and whether the file is modified."""
    where = runbook.parent
    return {
        "runbook": runbook.name,
        "runbook_sha256": sha256_file(runbook),
        "runbook_commit": _git(["log", "-1", "--format=%H", "--", runbook.name], where) or None,
        "head": _git(["rev-parse", "HEAD"], where),
        "runbook_modified": bool(_git(["status", "--porcelain", "--", runbook.name], where)),
    }


def environment(kernel: str) -> dict[str, Any]:
    """Versions only (never environment variables: they may hold secrets)."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "kernel": kernel,
        "packages": versions,
    }
