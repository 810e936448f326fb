"""The steps table a runbook shows is readable (issue 14 item 9, jupyter-ux note 11).

Before: save_audit displayed the raw frames: "attempt" as 1.0 / None, durations as
6-decimal floats, times without a zone, "detail" as a long JSON string, and the cycles
table with all 23 CSV columns.  The CSV files keep every column; the displayed tables
keep what an engineer reads.  Built from journal-shaped records; no ESXi needed.
"""

from __future__ import annotations

import json

from vmigrate_lib.audit.dashboard import readable_steps
from vmigrate_lib.audit.tables import steps_frame

T0 = 1796000000.0


def test_steps_table_has_units_zone_and_short_details() -> None:
    records = [
        {"type": "preflight", "ts": T0, "ok": True, "checks": ["x" * 40] * 6},
        {"type": "step", "name": "shutdown", "status": "started", "attempt": 1,
         "start": T0 + 1, "ts": T0 + 1},
        {"type": "step", "name": "shutdown", "status": "done", "attempt": 1,
         "start": T0 + 1, "end": T0 + 3.123456, "ts": T0 + 3.2},
    ]
    raw = steps_frame(records)
    assert len(str(raw["detail"].iloc[0])) > 80  # what the old table showed in full
    table = readable_steps(raw)
    assert list(table.columns) == ["time", "type", "step", "status", "attempt", "duration",
                                   "detail"]
    shutdown = table[table["step"] == "shutdown"].iloc[0]
    assert shutdown["attempt"] == "1" and shutdown["duration"] == "2.1 s"
    assert shutdown["time"].endswith(" UTC") and shutdown["time"][:4] == "2026"
    assert table["attempt"].iloc[0] == ""  # no attempt: blank, not None/NaN
    assert len(table["detail"].iloc[0]) <= 80 and table["detail"].iloc[0].endswith("...")
    json.dumps(table.to_dict("records"))  # plain strings throughout
