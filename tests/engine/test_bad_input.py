"""Bad input: a clear one-line error, exit code 2, and nothing changed anywhere."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.engine.refusals import run_and_check_unchanged
from vmigrate_lib.lab.layout import LabLayout
from vmigrate_lib.lab.lifecycle import create_vm

MiB = 1 << 20


@pytest.fixture
def lab(make_lab):
    return make_lab(power_on=False)


@pytest.mark.parametrize("command", ["preflight", "sync"])
def test_unknown_vm(lab, command: str) -> None:
    params = lab.write_params(vm="carol")
    line = run_and_check_unchanged(lab, command, "-p", str(params))
    assert "no VM 'carol'" in line and "check the VM name" in line


def test_unknown_host(lab) -> None:
    params = lab.write_params(destination={"host": "esx-z"})
    line = run_and_check_unchanged(lab, "sync", "-p", str(params))
    assert "esx-z" in line


def test_destination_vm_already_exists(lab) -> None:
    create_vm(LabLayout(lab.root), "esx-b", "datastore1", "alice", [8 * MiB], fill=0.0)
    params = lab.write_params()
    line = run_and_check_unchanged(lab, "sync", "-p", str(params))
    assert "already exists" in line and "esx-b" in line


def test_destination_folder_left_by_someone_else(lab) -> None:
    (lab.ds_dir("esx-b") / "alice").mkdir()
    (lab.ds_dir("esx-b") / "alice" / "notes.txt").write_text("not ours")
    params = lab.write_params()
    line = run_and_check_unchanged(lab, "sync", "-p", str(params))
    assert "[datastore1] alice already exists" in line


def test_not_enough_space(lab, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as the destination datastore")
    small = lab.ds_dir("esx-b")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)]).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        params = lab.write_params()
        line = run_and_check_unchanged(lab, "sync", "-p", str(params))
        assert "free" in line and "needs" in line
    finally:
        subprocess.run(["umount", "-l", str(small)])


def test_disk_size_mismatch(lab) -> None:
    params = lab.write_params()
    r = lab.cli("sync", "-p", str(params))
    assert r.returncode == 0, r.stderr
    dst = lab.ds_dir("esx-b") / "alice" / "alice_1-flat.vmdk"
    os.truncate(dst, 16 * MiB)
    line = run_and_check_unchanged(lab, "sync", "-p", str(params))
    assert "alice_1-flat.vmdk" in line and str(16 * MiB) in line


def test_stray_snapshot(lab) -> None:
    lab.host().create_snapshot("alice", "backup-tool-nightly")
    params = lab.write_params()
    line = run_and_check_unchanged(lab, "sync", "-p", str(params))
    assert "backup-tool-nightly" in line


def test_workspace_of_another_migration(lab) -> None:
    params = lab.write_params()
    assert lab.cli("sync", "-p", str(params)).returncode == 0
    other = lab.write_params(lab.workdir / "other.yaml", dest_name="bob")
    line = run_and_check_unchanged(lab, "sync", "-p", str(other))
    assert "belongs to another migration" in line


@pytest.mark.parametrize(
    "text, words",
    [
        ("vm: alice\nsource: {host: esx-a\n", "not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("vm: alice\nsource: {host: esx-a}\ndestination: {host: esx-b}\nworkspace: ws\n"
         "sync: {cycles_per_hour: 3}\n", "unknown parameter sync.cycles_per_hour"),
        ("vm: alice\nsource: {host: esx-a, password: s3cr3t-value}\n"
         "destination: {host: esx-b}\nworkspace: ws\n", "holds a secret"),
    ],
)
def test_malformed_params_file(lab, text: str, words: str) -> None:
    bad = lab.workdir / "bad.yaml"
    bad.write_text(text)
    line = run_and_check_unchanged(lab, "sync", "-p", str(bad))
    assert words in line
    assert "s3cr3t-value" not in line


def test_bad_flag_value(lab) -> None:
    params = lab.write_params()
    r = lab.cli("sync", "-p", str(params), "--cycles", "0")
    assert r.returncode == 2 and "at least 1" in r.stderr


def test_snapshot_of_another_vmigrate_migration(lab) -> None:
    """Another migration's leftover is not ours to remove: refused, named, nothing changed."""
    lab.host().create_snapshot("alice", "vmigrate-0123456789ab-c3")
    params = lab.write_params()
    line = run_and_check_unchanged(lab, "sync", "-p", str(params))
    assert "vmigrate-0123456789ab-c3" in line and "another vmigrate migration" in line


def test_certify_before_any_sync(lab) -> None:
    """Issue 9 item 15: nothing to certify is bad input found before anything is written.

    Before: the workspace folder, ``.lock``, ``state.json`` and a journal were created,
    then the command exited 2.  Nothing here depends on the host being real.
    """
    params = lab.write_params()
    line = run_and_check_unchanged(lab, "certify", "-p", str(params))
    assert "nothing to certify yet" in line and "run vmigrate sync first" in line
    assert not (lab.workdir / "ws").exists()
