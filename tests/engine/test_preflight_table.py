"""Preflight is a table of named checks; a failing line marked ``blocks`` stops the
later checks, the others let every check run so the operator sees the whole picture.

A real lab (guest process, sparse disks), in process.  What only a real ESXi/vCenter
host would add: its own host-specific lines (``Host.migration_checks``: vSphere's disk
placement, tested in tests/vsphere) in the same table.
"""

from __future__ import annotations

from typing import Any

from vmigrate_lib.engine.preflight import CHECKS, run_preflight
from vmigrate_lib.errors import DatastoreNotFound
from vmigrate_lib.session import close_migration, open_migration


def test_checks_are_a_table_in_order() -> None:
    """Each check is a named function ``(m, ctx) -> Iterable[Check]`` (before: one
    148-line ``_checks`` with early returns deciding silently what never ran)."""
    names = [name for name, _ in CHECKS]
    assert names == ["source VM", "data plane", "host specific", "change tracking",
                     "snapshots", "source claim", "disk files", "destination datastore",
                     "transfer mode",
                     "compression", "storage",
                     "identity", "destination name", "destination disks", "destination space"]
    assert all(callable(func) and func.__doc__ for _, func in CHECKS)


def test_a_blocking_failure_stops_the_later_checks_only(make_lab: Any) -> None:
    """A missing destination datastore blocks (nothing after it can be read), after every
    check before it ran; its error is the one raised."""
    lab = make_lab(disk_sizes=(8 << 20,), rate_mb_s=0.5)
    m = open_migration(lab.params(destination={"datastore": "nope"}))
    try:
        report = run_preflight(m, raise_on_failure=False)
    finally:
        close_migration(m)
    lines = {c.name: c for c in report.checks}
    assert list(lines)[-1] == "destination datastore"
    assert not lines["destination datastore"].ok and lines["destination datastore"].blocks
    assert isinstance(lines["destination datastore"].error, DatastoreNotFound)
    for later in ("transfer mode", "destination name", "destination space"):
        assert later not in lines
    for earlier in ("source VM", "disk 2000", "change tracking", "snapshots", "source claim"):
        assert lines[earlier].ok, lines[earlier]
    assert isinstance(report.first_error(), DatastoreNotFound)
