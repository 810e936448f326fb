"""audit/ holds read-only views of what the engine records; the faces drive the engine.

Issue 10 item 2: ``audit/runbook.py`` and ``audit/runner.py`` opened migrations, ran
the sync loop and the cutover, and ran papermill: the notebook face, filed under
audit.  They moved to ``faces/notebook.py`` and ``faces/papermill_runner.py``.  This
reads every audit module's imports with :mod:`ast` (function-local ones included) and
fails if one reaches a face, opens a migration (``session``) or imports an engine
module that acts (sync, cycle, cutover, preflight, converge...).  Run against the
tree before the move it failed on ``audit/runbook.py`` (``engine.converge``,
``engine.cutover``, ``engine.preflight``, ``session``...).
No host is involved: a real ESXi/vCenter changes nothing here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "vmigrate_lib"
#: What a view may read from the engine: typed records, the journal, the Reporter interface.
ENGINE_READS = {"vmigrate_lib.engine.state", "vmigrate_lib.engine.cycle_records",
                "vmigrate_lib.engine.workspace",
                "vmigrate_lib.engine.progress"}


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative ones resolved), anywhere in it."""
    base = "vmigrate_lib.audit"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")[: len(base.split(".")) - node.level + 1]
                mod = ".".join(parts + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in out if m.startswith("vmigrate_lib")}


def test_audit_modules_only_read() -> None:
    offenders: dict[str, list[str]] = {}
    for path in sorted((PACKAGE / "audit").glob("*.py")):
        bad = sorted(
            m for m in _imports(path)
            if m.startswith(("vmigrate_lib.faces", "vmigrate_lib.session"))
            or (m.startswith("vmigrate_lib.engine.") and m.count(".") == 2
                and m not in ENGINE_READS))
        if bad:
            offenders[path.name] = bad
    assert not offenders, f"audit/ modules that drive the engine or reach a face: {offenders}"


def test_checker_resolves_relative_imports(tmp_path: Path) -> None:
    """The reader sees ``from ..engine.cutover import x`` inside a function."""
    f = tmp_path / "m.py"
    f.write_text("def go():\n    from ..engine.cutover import run_cutover\n    from . import plots\n")
    assert {"vmigrate_lib.engine.cutover", "vmigrate_lib.audit.plots"} <= _imports(f)
