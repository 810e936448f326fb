"""Signed and chained evidence (issue 14 item 7), with OpenSSH's own ssh-keygen.

The scheme is git's ``gpg.format = ssh``: ``ssh-keygen -Y sign -n NAMESPACE`` over the
manifest, checked with ``-Y find-principals`` and ``-Y verify`` against an allowed
signers file (``man ssh-keygen``: sections -Y sign / -Y verify and ALLOWED SIGNERS;
git-config(1), gpg.format and gpg.ssh.allowedSignersFile).  Before: anyone who edited a
notebook could re-hash ``MANIFEST.sha256`` and ``vmigrate evidence verify`` passed (the
digest the journal recorded was never compared), and nothing said who sealed an archive.
Only a real deployment shows where operators keep their keys (ssh-agent, a hardware key):
here the key is a file with no passphrase.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from vmigrate_lib.audit.evidence import SIGNATURE, EvidenceTampered, check_chain, write_manifest
from vmigrate_lib.audit.signing import KEY_ENV, SIGNERS_ENV, check_signature
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.faces.cli import main
from vmigrate_lib.faces.run_archive import journal_archived, seal


def _key(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True)
    return key


def _signers(path: Path, principal: str, key: Path) -> Path:
    pub = key.with_suffix(".pub").read_text().split()
    path.write_text(f'{principal} namespaces="vmigrate-evidence" {pub[0]} {pub[1]}\n')
    return path


def _archived(tmp_path: Path, key: Path | None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one sealed run folder, journaled as the runner does."""
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    ws.state_path.write_text("{}")  # journal_archived only needs a claimed workspace
    folder = ws.evidence_dir / "20261130T000000Z-sync-CHG-1"
    folder.mkdir(parents=True)
    (folder / "sync.ipynb").write_text('{"cells": []}')
    (folder / "run.json").write_text('{"status": "ok"}')
    if key is not None:
        monkeypatch.setenv(KEY_ENV, str(key))
    else:
        monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(SIGNERS_ENV, raising=False)
    _, manifest, said = seal(folder, {"status": "ok", "error": None}, {})
    assert said.startswith("signed" if key else "unsigned: no signing key configured")
    journal_archived(ws, "sync", "ok", folder, manifest)
    return folder


def _verify(folder: Path, *extra: str) -> int:
    return main(["evidence", "verify", str(folder), *extra])


def test_signed_archive_names_its_signer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    key = _key(tmp_path, "alice")
    folder = _archived(tmp_path, key, monkeypatch)
    assert (folder / SIGNATURE).read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    assert all(stat.S_IMODE(p.stat().st_mode) == (0o500 if p.is_dir() else 0o400)
               for p in [folder, *folder.rglob("*")])  # sealed read-only
    signers = _signers(tmp_path / "allowed_signers", "alice@example.org", key)
    assert _verify(folder, "--allowed-signers", str(signers)) == 0
    out = capsys.readouterr().out
    assert "signed by alice@example.org" in out and "chained:" in out
    # without an allowed signers file the signature is still checked against the bytes
    assert _verify(folder) == 0
    assert "signer not checked" in capsys.readouterr().out
    # a key that is not an allowed signer is refused
    other = _signers(tmp_path / "others", "mallory@example.org", _key(tmp_path, "mallory"))
    assert _verify(folder, "--allowed-signers", str(other)) == 1
    assert "not in" in capsys.readouterr().err


def test_unsigned_archive_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = _archived(tmp_path, None, monkeypatch)
    assert _verify(folder) == 0
    assert "; unsigned (" in capsys.readouterr().out


@pytest.mark.parametrize("signed", [False, True])
def test_resealed_archive_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], signed: bool) -> None:
    """Edit the notebook, re-hash the manifest (and drop the signature): the manifest
    matches its files, but not the journal's record of it.  Before: verify passed."""
    folder = _archived(tmp_path, _key(tmp_path, "alice") if signed else None, monkeypatch)
    os.chmod(folder, 0o700)
    (folder / "sync.ipynb").chmod(0o600)
    (folder / "sync.ipynb").write_text('{"cells": [], "edited": true}')
    (folder / SIGNATURE).unlink(missing_ok=True)
    write_manifest(folder)
    assert _verify(folder) == 1
    assert "was re-sealed" in capsys.readouterr().err
    # a copy away from its workspace: the chain is not checked, and says so plainly
    copy = tmp_path / "copy" / "x" / folder.name
    copy.parent.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(folder), str(copy)], check=True)
    assert check_chain(copy).status == "no journal"
    assert _verify(copy) == 0 and "not chained" in capsys.readouterr().out
    journal = folder.parent.parent / "journal.jsonl"
    assert _verify(copy, "--journal", str(journal)) == 1


def test_signature_of_another_manifest_fails(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-hashed manifest under the old signature: the signature no longer matches."""
    key = _key(tmp_path, "alice")
    folder = _archived(tmp_path, key, monkeypatch)
    os.chmod(folder, 0o700)
    (folder / "run.json").chmod(0o600)
    (folder / "run.json").write_text(json.dumps({"status": "OK"}))
    write_manifest(folder)
    signers = _signers(tmp_path / "allowed_signers", "alice@example.org", key)
    with pytest.raises(EvidenceTampered, match="does not match it"):
        check_signature(folder, signers)
