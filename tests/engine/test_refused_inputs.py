"""Refused input, through the real CLI: exit 2, one line, nothing written, no secret kept.

Each case is a params file an operator could write.  ``vmigrate sync`` and
``vmigrate run sync`` (papermill, evidence archive) must refuse it before
anything is created: no workspace, no evidence folder, no kernel (so nothing in
IPython's history database under ``$IPYTHONDIR``), and the pasted secret
appears nowhere: not on stderr, not in any file.  No lab is needed: the
refusal comes before any host is contacted, which is also what makes these
cases independent of a real ESXi/vCenter (a real host would only be reached
after the checks proven here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fsproof import tree_fingerprint

SECRET = "Hunter2-S3cret"
HEAD = ("vm: alice\nchange_id: CHG-1\noperator: tester\nworkspace: ws\n"
        "destination: {type: lab, host: esx-b, lab_root: lab}\n")
SOURCE = "source: {type: lab, host: esx-a, lab_root: lab}\n"
BOMB = "".join(
    [f"a0: &a0 [{SECRET}]\n"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)])


def _file(text: str) -> bytes:
    return text.encode()


CASES: list[tuple[str, bytes, str]] = [
    ("password", _file(HEAD + f"source: {{type: lab, host: esx-a, password: {SECRET}}}\n"),
     "source.password holds a secret"),
    ("password-in-ssh-url", _file(
        HEAD + f"source: {{type: lab, host: esx-a, url: 'ssh://root:{SECRET}@10.0.0.1'}}\n"),
     "source.url holds a password"),
    ("key-in-ssh_key", _file(
        HEAD + "source:\n  host: esx-a\n  ssh_key: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n"
        f"    {SECRET}\n    -----END OPENSSH PRIVATE KEY-----\n"),
     "source.ssh_key holds key material"),
    ("value-in-password_env", _file(
        HEAD + f"source: {{type: lab, host: esx-a, password_env: '{SECRET}'}}\n"),
     "source.password_env must name an environment variable"),
    ("secret-in-unknown-key", _file(HEAD + SOURCE + f"api_token: {SECRET}\n"),
     "parameter api_token"),
    ("nan-sync-age", _file(HEAD + SOURCE + "cutover: {max_sync_age: .nan}\n"),
     "cutover.max_sync_age: must be a finite duration"),
    ("inf-budget", _file(HEAD + SOURCE + "downtime_budget: .inf\n"), "must be a finite"),
    ("inf-size", _file(HEAD + SOURCE + "sync: {checkpoint_bytes: .inf}\n"), "must be a finite"),
    ("trailing-newline", _file(HEAD.replace("vm: alice", 'vm: "alice\\n"') + SOURCE),
     "vm: not a valid VM name"),
    ("lab-host-path", _file(HEAD + "source: {type: lab, host: ../../etc, lab_root: lab}\n"),
     "source.host: a lab host is a name"),
    ("port-0", _file(HEAD + "source: {type: lab, host: esx-a, ssh_port: 0}\n"),
     "source.ssh_port: must be from 1 to 65535"),
    ("url-port", _file(HEAD + "source: {type: lab, host: esx-a, url: 'ssh://h:99999'}\n"),
     "source.url: the port"),
    ("malformed-ssh-url", _file(HEAD + "source: {type: lab, host: esx-a, url: 'ssh://'}\n"),
     "source.url: not an ssh URL"),
    ("duplicate-key", _file(HEAD + SOURCE + "vm: bob\n"), "key vm appears twice"),
    ("number-as-key", _file(HEAD + SOURCE + "1: x\n"), "unknown parameter 1"),
    ("alias-bomb", _file(HEAD + SOURCE + BOMB + "cutover: {network_map: *a9}\n"),
     "expands to more than"),
    ("not-utf8", HEAD.encode() + SOURCE.encode() + b"operator: J\xe9r\xf4me\n",
     "is not UTF-8 text"),
    ("nul-byte", HEAD.encode() + SOURCE.encode() + b"operator: a\x00b\n", "holds a NUL byte"),
    ("workspace-root", _file(HEAD.replace("workspace: ws", "workspace: /") + SOURCE),
     "workspace / is not a folder vmigrate created"),
    ("workspace-unrelated", _file(HEAD.replace("workspace: ws", "workspace: docs") + SOURCE),
     "docs is not a folder vmigrate created"),
    ("workspace-in-datastore", _file(
        HEAD.replace("workspace: ws", "workspace: lab/hosts/esx-b/datastores/datastore1/ws")
        + SOURCE), "is inside the lab's folder"),
]


def tree(root: Path) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """Files (size, mtime) and folders: an empty new folder is a change too."""
    dirs = {str(Path(d).relative_to(root)) for d, _, _ in os.walk(root)}
    return tree_fingerprint(root), dirs


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder an operator works in: someone's documents, a lab folder beside, and this
    migration's workspace from an earlier run (its journal must not change either)."""
    (tmp_path / "ws").mkdir(mode=0o700)
    (tmp_path / "ws" / "journal.jsonl").write_text('{"type": "migration_created"}\n')
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("not vmigrate's")
    (tmp_path / "lab" / "hosts" / "esx-b" / "datastores" / "datastore1").mkdir(parents=True)
    (tmp_path / "ipython").mkdir()
    return tmp_path


def cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "IPYTHONDIR": str(workdir / "ipython"), "VMIGRATE_TEST_UNUSED": SECRET}
    return subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", *args], cwd=workdir,
                          capture_output=True, timeout=120, env=env)


@pytest.mark.parametrize("command", [("sync",), ("run", "sync")], ids=["sync", "run-sync"])
@pytest.mark.parametrize("name, data, words", CASES, ids=[c[0] for c in CASES])
def test_refused_before_anything(workdir: Path, command: tuple[str, ...], name: str,
                                 data: bytes, words: str) -> None:
    params = workdir / "params.yaml"
    params.write_bytes(data)
    os.chmod(params, 0o600)
    before = tree(workdir)
    r = cli(workdir, *command, "-p", "params.yaml")
    after = tree(workdir)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, (r.returncode, err)
    # one error line; other lines may only be one-line library warnings
    lines = [x for x in err.strip().splitlines() if not x.startswith("vmigrate: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("vmigrate: error: "), err
    assert words in lines[0], lines[0]
    assert SECRET.encode() not in r.stderr + r.stdout
    assert before == after, "something was created or changed"
    for dirpath, _, files in os.walk(workdir):
        for f in files:
            p = Path(dirpath) / f
            if p != params:
                assert SECRET.encode() not in p.read_bytes(), p
    assert not any((workdir / "ipython").iterdir())  # no kernel, no history database
