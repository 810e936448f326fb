"""The comparison notebook's ``verified`` column is the whole ``evidence verify`` check.

Before, ``runs_frame`` called only the manifest check: an archive whose ``run.json`` was
edited and whose manifest was then re-hashed showed ``verified True`` although
``vmigrate evidence verify`` refuses it (the journal recorded another manifest), and so
did an archive whose signature no longer matched its manifest.  Real files, a real
workspace journal and real ``ssh-keygen -Y sign`` (the scheme of git's ``gpg.format
ssh``; ``man ssh-keygen``, -Y sign / check-novalidate).  Nothing here needs ESXi.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from vmigrate_lib.audit.compare import runs_frame
from vmigrate_lib.audit.evidence import SIGNATURE, sha256_file, write_manifest
from vmigrate_lib.audit.signing import sign_manifest
from vmigrate_lib.engine.workspace import Workspace


def _archive(ws_root: Path, name: str, status: str = "failed") -> Path:
    folder = ws_root / "evidence" / name
    (folder / "audit").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"runbook": "cutover", "status": status,
                                                 "change_id": "CHG-1", "result": {}}))
    (folder / "audit" / "cycles.csv").write_text("cycle,status,throughput_Bps\n1,ok,5000000\n")
    manifest = write_manifest(folder)
    Workspace(ws_root).journal.append(
        "evidence_archived", runbook="cutover", status=status, folder=str(folder),
        manifest_sha256=sha256_file(manifest), signed=False)
    return folder


def _row(folder: Path) -> dict[str, object]:
    rows = runs_frame([folder]).to_dict("records")
    return {str(k): v for k, v in rows[0].items()}


def test_a_resealed_archive_is_not_verified(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    intact = _archive(ws, "20261130T000000Z-cutover-CHG-1")
    row = _row(intact)
    assert row["verified"] is True and row["proof"] == (
        "manifest ok, chained to the journal, unsigned")

    resealed = _archive(ws, "20261130T010000Z-cutover-CHG-1")
    (resealed / "run.json").write_text(json.dumps({"runbook": "cutover", "status": "ok",
                                                   "change_id": "CHG-1", "result": {}}))
    write_manifest(resealed)  # the files match the manifest again
    row = _row(resealed)
    assert row["status"] == "ok"
    assert row["verified"] is False and "re-sealed" in str(row["proof"]), row


def test_a_signature_that_does_not_match_is_not_verified(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ws = tmp_path / "ws"
    ws.mkdir()
    folder = _archive(ws, "20261130T000000Z-cutover-CHG-1")
    other = _archive(ws, "20261130T010000Z-cutover-CHG-1", status="ok")
    assert sign_manifest(other / "MANIFEST.sha256", str(key)).startswith("signed")
    (folder / SIGNATURE).write_bytes((other / SIGNATURE).read_bytes())  # another manifest's
    row = _row(folder)
    assert row["verified"] is False and "does not match" in str(row["proof"]), row
    assert _row(other)["proof"] == ("manifest ok, chained to the journal, "
                                    "signed (signer not checked)")
