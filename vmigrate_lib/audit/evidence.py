"""The evidence archive of a run: a folder of files sealed by a SHA-256 manifest.

``MANIFEST.sha256`` uses ``sha256sum`` format (``<hex>  <path>``), so an
auditor can check a copy with coreutils alone; :func:`verify` also reports
files that were added or removed, which ``sha256sum -c`` does not.  The
manifest proves integrity since sealing, not authorship: the workspace journal
records each manifest's digest (:func:`check_chain` compares it, so a re-sealed
archive is detected) and ``MANIFEST.sha256.sig`` signs it (:mod:`.signing`).

An archive is private: its folders are 0700 from the moment they exist (so no
one else can reach a file while it is being written, whatever mode papermill or
nbconvert give it) and every file is 0600, or stricter where the umask says so.
Once sealed it is read-only (folders 0500, files 0400); root ignores modes, so
the project's JupyterLab also refuses to save into it (:mod:`vmigrate_lib.faces.
jupyter_contents`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..atomicfile import write_atomic
from ..errors import OperationError

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"  #: ``ssh-keygen -Y sign`` of the manifest (not listed in it)


class EvidenceError(OperationError):
    """An evidence archive could not be written or read."""

    default_hint = "check the evidence folder and its permissions"


class EvidenceTampered(EvidenceError):
    """An archive does not match its manifest."""

    default_hint = ("the archive was changed after it was sealed; use an untouched copy "
                    "(the workspace journal records each manifest's digest)")


def current_umask() -> int:
    """The process umask, read without changing it (Linux /proc), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def private_dirs(path: Path, *, tighten: bool = False) -> Path:
    """Create ``path`` and its missing parents 0700.  ``tighten``: an existing ``path``
    we own loses its group/other bits (for vmigrate's own folders only, never one the
    operator named, such as ``--evidence-dir /tmp``)."""
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            continue
        os.chmod(p, 0o700)  # the umask may strip bits from mkdir's mode; never add any
    st = path.stat()
    if tighten and st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600 or the umask's stricter choice, never
    through a symlink), atomically: a reader or a crash finds the old file or the new one."""
    write_atomic(path, data, mode=0o600)


def make_private(folder: Path) -> None:
    """Folders 0700, files 0600 (minus what the umask removes) under ``folder``."""
    fmode = 0o600 & ~current_umask()
    for dirpath, _dirs, filenames in os.walk(folder):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, fmode)


def seal_read_only(folder: Path) -> None:
    """Folders 0500, files 0400 (minus what the umask removes): the sealed archive."""
    fmode = 0o400 & ~current_umask()
    for dirpath, _dirs, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, fmode)
        os.chmod(dirpath, 0o500)


def is_sealed_archive(path: Path) -> bool:
    """True if ``path`` is in (or is) a folder sealed by a manifest."""
    probe = Path(path)
    return any((folder / MANIFEST).is_file() for folder in (probe, *probe.parents))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def archive_files(folder: Path) -> list[str]:
    """Relative POSIX paths of every file in ``folder`` except the manifest."""
    folder = Path(folder)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if rel in (MANIFEST, SIGNATURE):
                continue
            if p.is_symlink():
                raise EvidenceError(f"evidence archives hold no symlinks: {rel}", path=rel)
            out.append(rel)
    return sorted(out)


def write_manifest(folder: Path) -> Path:
    """Seal the folder: one line per file with its SHA-256; returns the manifest path."""
    folder = Path(folder)
    try:
        lines = [f"{sha256_file(folder / rel)}  {rel}\n" for rel in archive_files(folder)]
        path = folder / MANIFEST
        write_private(path, "".join(lines).encode("utf-8"))
    except OSError as exc:
        raise EvidenceError(f"cannot seal evidence in {folder}: {exc.strerror}",
                            folder=str(folder)) from exc
    return path


@dataclass
class VerifyReport:
    folder: Path
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra or self.malformed)

    def problems(self) -> list[str]:
        return ([f"changed: {p}" for p in self.changed] + [f"missing: {p}" for p in self.missing]
                + [f"not in manifest: {p}" for p in self.extra]
                + [f"bad manifest line: {p}" for p in self.malformed])


def verify(folder: Path) -> VerifyReport:
    """Check every file against the manifest; report changed, missing and extra files."""
    folder = Path(folder)
    report = VerifyReport(folder)
    mpath = folder / MANIFEST
    try:
        text = mpath.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise EvidenceTampered(f"{folder} has no {MANIFEST}", folder=str(folder)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvidenceTampered(f"cannot read {mpath}: {exc}", folder=str(folder)) from exc
    listed: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not rel or rel.startswith("/") or ".." in rel.split("/"):
            report.malformed.append(line[:80])
            continue
        listed[rel] = digest
    try:
        present = set(archive_files(folder))
    except EvidenceError as exc:
        raise EvidenceTampered(exc.message, folder=str(folder)) from exc
    for rel, digest in sorted(listed.items()):
        if rel not in present:
            report.missing.append(rel)
            continue
        report.checked += 1
        if sha256_file(folder / rel) != digest:
            report.changed.append(rel)
    report.extra = sorted(present - set(listed))
    return report


def verify_or_raise(folder: Path) -> VerifyReport:
    """:func:`verify`, raising :class:`EvidenceTampered` on any difference."""
    report = verify(folder)
    if not report.ok:
        problems = report.problems()
        raise EvidenceTampered(
            f"evidence {folder} does not match its manifest: " + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
            folder=str(folder), problems=problems,
        )
    return report


@dataclass(frozen=True)
class ChainCheck:
    """The journal's record of an archive: ``chained`` (digests agree) or ``no journal``."""

    status: str
    journal: Path | None = None
    when: float | None = None

    def line(self) -> str:
        if self.status == "chained":
            at = dt.datetime.fromtimestamp(self.when or 0, dt.UTC).isoformat(timespec="seconds")
            return f"chained: the manifest is the one {self.journal} recorded at {at}"
        return ("not chained: no workspace journal found beside the archive (give "
                "--journal WORKSPACE/journal.jsonl to check for a re-seal)")


def check_chain(folder: Path, journal: Path | None = None) -> ChainCheck:
    """Compare the manifest's digest with the journal's ``evidence_archived`` record of this
    folder (by name; default journal ``<workspace>/journal.jsonl`` for ``<workspace>/evidence/
    <run>``).  A different digest, or a journal without a record, is :class:`EvidenceTampered`:
    someone re-sealed the archive, or the archive is not the workspace's."""
    folder = Path(folder)
    default = journal is None
    journal = journal if journal is not None else folder.resolve().parent.parent / "journal.jsonl"
    if default and not journal.is_file():
        return ChainCheck("no journal")
    try:
        lines = journal.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise EvidenceTampered(f"cannot read journal {journal}: {exc.strerror}",
                               folder=str(folder)) from exc
    found: dict[str, object] | None = None
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if (isinstance(rec, dict) and rec.get("type") == "evidence_archived"
                and Path(str(rec.get("folder", ""))).name == folder.resolve().name):
            found = rec
    if found is None:
        raise EvidenceTampered(f"journal {journal} has no record of archive {folder.name}",
                               folder=str(folder), hint="check this archive came from that "
                               "workspace; an archive the journal does not know is unproven")
    digest = sha256_file(folder / MANIFEST)
    if found.get("manifest_sha256") != digest:
        raise EvidenceTampered(
            f"archive {folder.name} was re-sealed: its manifest is not the one the journal "
            f"recorded (sha256 {str(found.get('manifest_sha256'))[:12]}..., now {digest[:12]}...)",
            folder=str(folder), hint="use an untouched copy of the archive")
    if found.get("signed") and not (folder / SIGNATURE).exists():
        raise EvidenceTampered(f"archive {folder.name} was signed when sealed but its "
                               f"{SIGNATURE} is gone", folder=str(folder),
                               hint="use an untouched copy of the archive")
    ts = found.get("ts")
    return ChainCheck("chained", journal, float(ts) if isinstance(ts, (int, float)) else None)
