"""The lab a test drives like an operator: hosts, params, the CLI, its disks.

One class for every folder: tests/conftest.py's ``make_lab`` fixture builds it, and
the cutover tests extend it (tests/cutover/cutover_helpers.Lab)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.params import MigrationParams, validate


class Lab:
    """A lab rooted in a test's tmp folder, with helpers to drive it like an operator."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = root.parent

    def host(self, name: str = "esx-a") -> LabHost:
        return LabHost(self.root, name)

    def raw_params(self, **over: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "vm": "alice",
            "workspace": str(self.workdir / "ws"),
            "source": {"type": "lab", "host": "esx-a", "lab_root": str(self.root)},
            "destination": {"type": "lab", "host": "esx-b", "datastore": "datastore1",
                            "lab_root": str(self.root)},
            "sync": {"checkpoint_bytes": "4MiB"},
        }
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return raw

    def params(self, **over: Any) -> MigrationParams:
        return validate(self.raw_params(**over))

    def write_params(self, path: Path | None = None, **over: Any) -> Path:
        import yaml

        path = path or self.workdir / "params.yaml"
        path.write_text(yaml.safe_dump(self.raw_params(**over)))
        return path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vmigrate_lib.faces.cli", *args],
            cwd=self.workdir, capture_output=True, text=True, timeout=timeout,
        )

    def ds_dir(self, host: str) -> Path:
        return self.root / "hosts" / host / "datastores" / "datastore1"

    def stop_guest(self, vm: str = "alice", host: str = "esx-a", timeout: float = 30) -> None:
        h = self.host(host)
        h.shutdown_guest(vm)
        deadline = time.monotonic() + timeout
        while h.power_state(vm) != PowerState.OFF:
            if time.monotonic() > deadline:
                raise TimeoutError("guest did not shut down")
            time.sleep(0.05)
