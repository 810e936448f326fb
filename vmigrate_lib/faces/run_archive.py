"""Archive and seal one runbook run: the evidence folder's files, its manifest, its signature.

A run folder is made private before anything lands in it (0700).  After the run,
the HTML export, the journal slice the run appended, the audit CSV/PNG, the
versions and the runbook's commit are added; then every file is checked for the
values of referenced secrets (redacted and noted), the manifest is written, signed
when the operator configured an SSH key (:mod:`vmigrate_lib.audit.signing`), and the
whole folder is sealed read-only.  The journal records the manifest's digest, which
``vmigrate evidence verify`` compares, so a re-sealed archive is detected.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..audit.evidence import (
    SIGNATURE,
    EvidenceError,
    private_dirs,
    seal_read_only,
    sha256_file,
    write_manifest,
    write_private,
)
from ..audit.html_export import offline_html
from ..audit.provenance import environment, git_info, redact, secret_refs
from ..audit.signing import sign_manifest
from ..audit.summary import add_summary
from ..engine.workspace import Workspace
from ..errors import VmigrateError
from ..units import fmt_utc, parse_duration
from .audit_outputs import save_audit


def nbformat_module() -> Any:
    """``nbformat`` (untyped: kept behind ``Any`` for mypy --strict)."""
    return importlib.import_module("nbformat")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:40] or "run"


def evidence_root(workspace: Path) -> Path:
    """``<workspace>/evidence`` (the workspace as the checked parameters resolve it)."""
    return Workspace(workspace).evidence_dir.resolve()


def _new_folder(root: Path, kind: str, change: Any, *, own_root: bool) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{kind}-{_slug(str(change or 'nochange'))}"
    private_dirs(root, tighten=own_root)
    for i in range(1000):
        folder = root / (base if i == 0 else f"{base}-{i}")
        try:
            folder.mkdir(mode=0o700)
            return folder
        except FileExistsError:
            continue
    raise EvidenceError(f"cannot create an evidence folder under {root}", folder=str(root))


def prepare_folder(kind: str, params: Mapping[str, Any], params_file: Path | None,
                   out_root: Path | None, ws: Workspace) -> Path:
    """A new private run folder holding the parameters (and the params file) as given;
    if even they cannot be written, no half folder stays."""
    root = Path(out_root) if out_root else evidence_root(ws.root)
    folder = _new_folder(root, kind, params.get("change_id"), own_root=out_root is None)
    try:
        write_private(folder / "parameters.yaml", yaml.safe_dump(
            json.loads(json.dumps(dict(params), default=str)), sort_keys=True).encode())
        if params_file is not None:
            write_private(folder / f"params-file{Path(params_file).suffix or '.yaml'}",
                          Path(params_file).read_bytes())
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)  # nothing ran yet: no half archive stays
        raise
    return folder


def export_html(nb_path: Path, html_path: Path) -> str | None:
    """HTML export readable offline (PNG inlined, widgets rendered static, nothing loaded
    from a CDN); returns an error text instead of failing the archive."""
    try:
        nb = nbformat_module().read(nb_path, as_version=4)
        title = str(nb.metadata.get("title") or nb_path.stem)
        html_path.write_text(offline_html(nb, title), encoding="utf-8")
    except Exception as exc:  # the archive must be written even if the export breaks
        return f"{type(exc).__name__}: {exc}"
    return None


def finish_document(folder: Path, kind: str, record: Mapping[str, Any]) -> str | None:
    """Put the change board's summary at the top of the executed notebook (from the
    files archived beside it), then export the HTML; returns an error text, if any."""
    nb_path = folder / f"{kind}.ipynb"
    problem = None
    try:
        nbformat = nbformat_module()
        nb = nbformat.read(nb_path, as_version=4)
        add_summary(nb, folder, kind, record)
        nbformat.write(nb, nb_path)
    except Exception as exc:  # the archive must be written even if this breaks
        problem = f"summary: {type(exc).__name__}: {exc}"
    exported = export_html(nb_path, folder / f"{kind}.html")
    return "; ".join(p for p in (problem, exported) if p) or None


def archive_outputs(folder: Path, kind: str, params: Mapping[str, Any], source: Path,
                    kernel: str, ws: Workspace, offset: int) -> dict[str, Any]:
    """The journal slice this run appended, the audit CSV/PNG, versions and the runbook's
    commit; returns notes for ``run.json`` (what could not be made).  The summary and the
    HTML come after (:func:`finish_document`): they read these files."""
    notes: dict[str, Any] = {}
    journal = ws.journal.path
    slice_bytes = b""
    if journal.exists():
        with open(journal, "rb") as f:
            f.seek(offset)
            slice_bytes = f.read()
    (folder / "journal.jsonl").write_bytes(slice_bytes)
    if journal.exists():
        try:
            save_audit(ws.root, budget=_budget(params), show=False, folder=folder / "audit")
        except VmigrateError as exc:
            notes["audit_error"] = exc.one_line()
    (folder / "environment.json").write_text(json.dumps(environment(kernel), indent=2))
    git = git_info(source)
    (folder / "git.json").write_text(json.dumps(git, indent=2))
    if git.get("runbook_modified"):
        notes["runbook_modified"] = True
    return notes


def _budget(params: Mapping[str, Any]) -> float | None:
    """The downtime budget for the audit plot, if the parameters give a readable one."""
    budget = params.get("downtime_budget")
    if not isinstance(budget, (int, float, str)):
        return None
    try:
        return parse_duration(budget)
    except ValueError:
        return None


def seal(folder: Path, record: dict[str, Any], params: Mapping[str, Any]
         ) -> tuple[dict[str, int], Path, str]:
    """Write ``run.json`` (and ``FAILED``), redact the referenced secrets' values from
    every file, write the manifest, sign it if a key is configured, seal read-only.
    Returns the redactions, the manifest and one line on the signature."""
    for key in ("started", "ended"):  # the epoch for machines, a UTC time for people
        if isinstance(record.get(key), (int, float)):
            record[f"{key}_utc"] = fmt_utc(float(record[key]))
    (folder / "run.json").write_text(json.dumps(record, indent=2, default=str))
    if record["status"] != "ok":
        (folder / "FAILED").write_text(
            f"{record['status']}: {(record['error'] or {}).get('message', '')}\n")
    redactions = redact(folder, secret_refs(params))
    if redactions:
        record["redactions"] = redactions
        (folder / "run.json").write_text(json.dumps(record, indent=2, default=str))
    manifest = write_manifest(folder)
    signed = sign_manifest(manifest)
    seal_read_only(folder)
    return redactions, manifest, signed


def journal_archived(ws: Workspace, kind: str, status: str, folder: Path,
                     manifest: Path) -> None:
    """Note the sealed folder in the workspace's journal (if the run made a migration):
    the chain ``vmigrate evidence verify`` checks the manifest against."""
    if ws.state_path.exists():
        ws.journal.append("evidence_archived", runbook=kind, status=status,
                          folder=str(folder), manifest_sha256=sha256_file(manifest),
                          signed=manifest.with_name(SIGNATURE).exists())
