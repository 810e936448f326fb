"""What a change board reads first: the summary block at the top of archived evidence.

Built at archive time from what the archive itself holds (the run's record, the
journal slice, ``environment.json``, ``git.json``), so every figure in it can be
checked against a file beside it.  The manifest's own digest cannot be written into
a file the manifest lists; the block says where it is recorded instead (the
workspace journal, which ``vmigrate evidence verify`` compares).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..units import fmt_bytes, fmt_secs

#: Cell metadata marking the summary cell (and the runbook's defaults cell) in evidence.
SUMMARY_TAG = "vmigrate-summary"
DEFAULTS_TAG = "vmigrate-runbook-defaults"
#: Tags of the failure banners a failed run's notebook starts with (vmigrate's, papermill's).
BANNER_TAGS = frozenset({"vmigrate-run-failed", "papermill-error-cell-tag"})


def when(ts: object) -> str:
    """An epoch time as a date with its zone: UTC and the machine's local time."""
    if not isinstance(ts, (int, float)):
        return "not recorded"
    utc = dt.datetime.fromtimestamp(ts, dt.UTC)
    local = utc.astimezone()
    zone = local.tzname() or local.strftime("%z")
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC ({local:%Y-%m-%d %H:%M:%S} {zone})"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _journal(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _secs(value: object) -> str:
    return fmt_secs(float(value)) if isinstance(value, (int, float)) else "not measured"


def _downtime(record: Mapping[str, Any]) -> str:
    result = record.get("result") or {}
    predicted = result.get("predicted_downtime_s",
                           (result.get("prediction") or {}).get("predicted_downtime"))
    measured = result.get("downtime_s")
    if measured is None:
        return f"predicted {_secs(predicted)} (no cutover in this run)"
    return f"predicted {_secs(predicted)}, measured {_secs(measured)}"


def _certify_rows(cycles: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for c in cycles:
        cert = c.get("certify") or {}
        for disk, res in sorted((cert.get("disks") or {}).items()):
            rows.append(f"| {c.get('number')} | {disk} | {res.get('result')} | "
                        f"{res.get('algorithm')} | `{res.get('source_digest', '')}` | "
                        f"`{res.get('dest_digest', '')}` |")
    return rows


def summary_markdown(folder: Path, kind: str, record: Mapping[str, Any]) -> str:
    """The summary block (Markdown) for the run archived in ``folder``."""
    journal = _journal(folder / "journal.jsonl")
    cycles = [r for r in journal if r.get("type") == "cycle"]
    env, git = _read_json(folder / "environment.json"), _read_json(folder / "git.json")
    error = (record.get("error") or {}).get("message")
    outcome = str(record.get("status", "unknown")).upper() + (f": {error}" if error else "")
    pkgs = env.get("packages") or {}
    versions = ", ".join(f"{k} {v}" for k, v in sorted(pkgs.items()) if k in (
        "vmigrate", "papermill", "nbconvert", "ipykernel", "ipywidgets"))
    lines = [
        f"# Evidence: {kind} runbook, change {record.get('change_id') or '(none)'}",
        "",
        "| | |", "|---|---|",
        f"| Change ticket | {record.get('change_id') or '(none)'} |",
        f"| Operator | {record.get('operator') or '(not given)'} |",
        f"| Started | {when(record.get('started'))} |",
        f"| Ended | {when(record.get('ended'))} |",
        f"| Outcome | **{outcome}** |",
        f"| Downtime | {_downtime(record)} |",
        f"| Cycles | {len(cycles)} in this run, {fmt_bytes(sum(int(c.get('bytes_sent') or 0) for c in cycles))} sent |",
        f"| Versions | Python {str(env.get('python', '?')).split()[0]}; {versions or 'see environment.json'} |",
        f"| Git commit | {git.get('runbook_commit') or 'not in a git checkout'}"
        f"{' (runbook modified)' if git.get('runbook_modified') else ''} |",
        "| Manifest | `MANIFEST.sha256` lists every file; its sha256 is recorded in the "
        "workspace journal (`evidence_archived`); `vmigrate evidence verify FOLDER` checks both |",
        "",
    ]
    certs = _certify_rows(cycles)
    if certs:
        lines += ["**Certify** (whole-disk or changed-block digests, source = destination):", "",
                  "| cycle | disk | result | algorithm | source digest | destination digest |",
                  "|---|---|---|---|---|---|", *certs, ""]
    lines += ["**Approval** (change board):", "",
              "| Reviewed by | Decision | Date | Signature |", "|---|---|---|---|",
              "| | | | |", "",
              "The parameters of this run are in `parameters.yaml` and in the cell marked "
              "*injected-parameters*; the runbook's defaults cell is not this run's."]
    return "\n".join(lines)


def add_summary(nb: Any, folder: Path, kind: str, record: Mapping[str, Any]) -> None:
    """Put the summary cell first in ``nb`` (an nbformat node) and a note before the
    runbook's defaults cell (tagged), so nobody reads the defaults as the run's parameters;
    no executed cell is changed."""
    nbformat: Any = importlib.import_module("nbformat")  # untyped

    cells = []
    for c in nb.cells:
        tags = c.get("metadata", {}).get("tags", [])
        if "parameters" in tags and DEFAULTS_TAG not in tags:
            c.metadata["tags"] = [*tags, DEFAULTS_TAG]
            note = nbformat.v4.new_markdown_cell(
                "*The next cell holds the runbook's defaults, **not this run's parameters**: "
                "those are in the injected-parameters cell after it and in "
                "`parameters.yaml`. The HTML leaves the defaults out.*")
            note.metadata["tags"] = [SUMMARY_TAG]
            cells.append(note)
        cells.append(c)
    summary = nbformat.v4.new_markdown_cell(summary_markdown(folder, kind, record))
    summary.metadata["tags"] = [SUMMARY_TAG]
    # a failure banner (faces/executed.py's mark, papermill's) stays first: it is what a reader must see
    banners = 0
    while banners < len(cells) and BANNER_TAGS & set(cells[banners].get("metadata", {})
                                                      .get("tags", [])):
        banners += 1
    nb.cells = [*cells[:banners], summary, *cells[banners:]]
    nb.metadata["title"] = f"{kind} runbook, change {record.get('change_id') or '(none)'}"
