"""The bad-input contract, checked on a real CLI run: exit 2, one error line, nothing
changed under the test's folder."""

from __future__ import annotations

from typing import Any

from tests.fsproof import tree_fingerprint


def run_and_check_unchanged(lab: Any, *args: str) -> str:
    """Run ``vmigrate *args`` in ``lab`` (tests/conftest.Lab); assert the refusal contract
    and return the one error line."""
    before = tree_fingerprint(lab.workdir)
    r = lab.cli(*args)
    after = tree_fingerprint(lab.workdir)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    # one error line; other lines may only be one-line library warnings
    lines = [x for x in r.stderr.strip().splitlines() if not x.startswith("vmigrate: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("vmigrate: error: "), r.stderr
    assert "Traceback" not in r.stderr
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed, f"files changed: {sorted(changed)}"
    return str(lines[0])
