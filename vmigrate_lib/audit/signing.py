"""SSH signatures on evidence manifests: who sealed an archive, not only that it is unchanged.

The scheme is git's ``gpg.format ssh``: ``ssh-keygen -Y sign`` with a namespace
(here :data:`NAMESPACE`) writes ``MANIFEST.sha256.sig`` beside the manifest, and
``ssh-keygen -Y find-principals`` / ``-Y verify`` check it against an *allowed
signers* file (``man ssh-keygen``, ALLOWED SIGNERS: ``principals [options] keytype
base64-key`` per line).  The key is the operator's: :data:`KEY_ENV` names its file
(a private key, or a public key whose private half is in ``ssh-agent``); the
allowed signers file is :data:`SIGNERS_ENV` or ``--allowed-signers``.  Without a
key an archive is sealed and marked plainly "unsigned".
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .evidence import MANIFEST, SIGNATURE, EvidenceTampered

NAMESPACE = "vmigrate-evidence"
KEY_ENV = "VMIGRATE_SIGNING_KEY"
SIGNERS_ENV = "VMIGRATE_ALLOWED_SIGNERS"
_TIMEOUT = 60.0


def _keygen(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ssh-keygen without a terminal (a passphrase prompt fails instead of hanging)."""
    return subprocess.run(["ssh-keygen", *args], input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=_TIMEOUT, check=False,
                          start_new_session=True)


def _last_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
    return text[-1] if text else f"exit status {proc.returncode}"


def sign_manifest(manifest: Path, key: str | None = None) -> str:
    """Sign ``manifest`` with ``key`` (default ``$VMIGRATE_SIGNING_KEY``); returns one line
    saying what happened.  A failed signature leaves the archive unsigned, never unsealed:
    the run's evidence is kept either way."""
    key = key if key is not None else os.environ.get(KEY_ENV, "")
    if not key:
        return f"unsigned: no signing key configured (set {KEY_ENV} to an SSH key file)"
    sig = manifest.with_name(SIGNATURE)
    try:
        proc = _keygen(["-Y", "sign", "-q", "-f", key, "-n", NAMESPACE], manifest.read_bytes())
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unsigned: ssh-keygen could not sign: {exc}"
    if proc.returncode != 0 or not proc.stdout.startswith(b"-----BEGIN SSH SIGNATURE-----"):
        return f"unsigned: ssh-keygen could not sign with {key}: {_last_line(proc)}"
    sig.write_bytes(proc.stdout)
    os.chmod(sig, 0o400)
    return f"signed with {key} (namespace {NAMESPACE})"


@dataclass(frozen=True)
class SignatureCheck:
    """What the signature says: ``unsigned``, ``valid`` (signer named) or ``unchecked``."""

    status: str
    signer: str = ""
    detail: str = ""

    def line(self) -> str:
        if self.status == "unsigned":
            return "unsigned (no MANIFEST.sha256.sig: nobody vouches for who sealed it)"
        if self.status == "valid":
            return f"signed by {self.signer} (allowed signers: {self.detail})"
        return f"signed, signer not checked ({self.detail})"


def check_signature(folder: Path, allowed_signers: Path | None = None) -> SignatureCheck:
    """Check the manifest's signature; raise :class:`EvidenceTampered` when it is bad or its
    key is not an allowed signer.  ``allowed_signers``: default ``$VMIGRATE_ALLOWED_SIGNERS``;
    without one only the signature's structure and the manifest's bytes are checked."""
    manifest, sig = folder / MANIFEST, folder / SIGNATURE
    if not sig.exists():
        return SignatureCheck("unsigned")
    data = manifest.read_bytes()
    if allowed_signers is None and os.environ.get(SIGNERS_ENV):
        allowed_signers = Path(os.environ[SIGNERS_ENV])
    if allowed_signers is None:
        proc = _keygen(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], data)
        if proc.returncode != 0:
            raise EvidenceTampered(f"the signature of {manifest} does not match it: "
                                   f"{_last_line(proc)}", folder=str(folder))
        return SignatureCheck("unchecked", detail="give --allowed-signers FILE to name the "
                              f"signer, or set {SIGNERS_ENV}")
    if not allowed_signers.is_file():
        raise EvidenceTampered(f"allowed signers file {allowed_signers} not found",
                               folder=str(folder), hint="give an existing allowed signers file "
                               "(format: man ssh-keygen, ALLOWED SIGNERS)")
    found = _keygen(["-Y", "find-principals", "-f", str(allowed_signers), "-n", NAMESPACE,
                     "-s", str(sig)])
    principals = found.stdout.decode("utf-8", "replace").split()
    if found.returncode != 0 or not principals:
        raise EvidenceTampered(
            f"{sig} was made by a key that is not in {allowed_signers}", folder=str(folder),
            hint="the archive was signed by someone else; ask who, or add their key to the "
            "allowed signers file if they may seal evidence")
    proc = _keygen(["-Y", "verify", "-f", str(allowed_signers), "-I", principals[0],
                    "-n", NAMESPACE, "-s", str(sig)], data)
    if proc.returncode != 0:
        raise EvidenceTampered(f"the signature of {manifest} does not match it: "
                               f"{_last_line(proc)}", folder=str(folder))
    return SignatureCheck("valid", signer=principals[0], detail=str(allowed_signers))
