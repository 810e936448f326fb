"""The seams are typed: a misspelled mode, status, event or host key fails ``mypy --strict``.

Each snippet below is code a contributor could write against vmigrate_lib; the test
runs the project's own mypy (strict, the pyproject settings) over it and expects the
one error its marker line names.  Before modes, statuses and events were types
(plain ``str`` fields, ``Reporter.event(kind: str, **info)``, one flat ``HostParams``,
``open_ssh_datastore(settings: object)``) every snippet type-checked.  Nothing here needs a real ESXi/vCenter host: it is a
property of the source, not of a run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEADER = """\
from vmigrate_lib.params import MigrationParams
"""

#: name -> (snippet body, a fragment of the error mypy must report on the marked line)
SNIPPETS: dict[str, tuple[str, str]] = {
    "certify mode typo": (
        """
def f(p: MigrationParams) -> bool:
    return p.sync.certify == "ful"  # ERROR
""", "Non-overlapping equality check"),
    "host type typo": (
        """
def f(p: MigrationParams) -> bool:
    return p.source.type == "vpshere"  # ERROR
""", "Non-overlapping equality check"),
    "ssh mode typo": (
        """
def f(p: MigrationParams) -> bool:
    return p.source.ssh_mode in ("relay", "dirct") and p.source.ssh_mode == "dirct"  # ERROR
""", "Non-overlapping equality check"),
    "cutover status typo": (
        """
from vmigrate_lib.engine.state import CutoverRecord
def f(co: CutoverRecord) -> bool:
    return co.status == "rolledback"  # ERROR
""", "Non-overlapping equality check"),
    "step status typo": (
        """
from vmigrate_lib.engine.state import StepRecord
def f(rec: StepRecord) -> None:
    rec.status = "finished"  # ERROR
""", "Incompatible types in assignment"),
    "event kind typo": (
        """
from vmigrate_lib.engine.progress import Reporter
def f(r: Reporter) -> None:
    r.event("phse", phase="wait")  # ERROR
""", "Unexpected keyword argument"),
    "event matched by a misspelled kind": (
        """
from vmigrate_lib.engine.progress import Event, PhaseReached
def f(ev: Event) -> bool:
    return isinstance(ev, PhaseReached) and ev.detial == "x"  # ERROR
""", "has no attribute"),
    "a vSphere key read from any host": (
        """
def f(p: MigrationParams) -> bool:
    return p.source.verify_tls  # ERROR
""", 'Item "LabHostParams"'),
    "an SSH datastore opened without SshSettings": (
        """
from vmigrate_lib.dataplane import open_ssh_datastore
def f(p: MigrationParams) -> None:
    open_ssh_datastore("ds1", "/vmfs/volumes/ds1", p.source)  # ERROR
""", "incompatible type"),
}


def _mypy(tmp_path: Path, snippets: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    """Run mypy once over one file per snippet; the errors reported per file."""
    files = {}
    for i, (name, (body, _)) in enumerate(snippets.items()):
        path = tmp_path / f"snippet_{i}.py"
        path.write_text(HEADER + textwrap.dedent(body))
        files[name] = path
    proc = subprocess.run(
        # a cache of its own: a shared one replays a cached snippet's errors under the
        # path it had in an earlier run
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / ".mypy_cache"),
         "--config-file", str(ROOT / "pyproject.toml"), *map(str, files.values())],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    out: dict[str, list[str]] = {}
    for name, path in files.items():
        out[name] = [ln for ln in proc.stdout.splitlines() if ln.startswith(str(path) + ":")]
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    return _mypy(tmp_path_factory.mktemp("seams"), SNIPPETS)


@pytest.mark.parametrize("name", list(SNIPPETS))
def test_a_typo_fails_mypy(name: str, reports: dict[str, list[str]]) -> None:
    body, fragment = SNIPPETS[name]
    marked = HEADER.count("\n") + textwrap.dedent(body).splitlines().index(
        next(ln for ln in textwrap.dedent(body).splitlines() if ln.endswith("# ERROR"))) + 1
    errors = reports[name]
    assert errors, f"{name}: mypy accepted the typo: {reports}"
    lines = {int(m.group(1)) for e in errors if (m := re.search(r"\.py:(\d+):", e))}
    assert lines == {marked}, errors
    assert any(fragment in e for e in errors), errors
