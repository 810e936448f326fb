"""One migration per source VM: a second workspace migrating the same VM is refused, named.

Two workspaces with different ``dest_name``s used to sync Alice side by side
and could both cut over (two Bobs).  Now the first sync writes a claim file in
Alice's folder on her datastore through the data plane; preflight, sync and
the cutover's go/no-go of any other migration refuse while it is there, naming
the migration, its workspace and its destination; the claim goes at a
completed cutover or ``vmigrate abandon``; a stale one goes with
``vmigrate release-claim --migration-id``.

Real vSphere has no notion of "a migration in progress" for a third-party tool:
two tools may each snapshot and read a VM (VADP backups do so concurrently), and
a VM's folder accepts extra files (the host locks only the files the running VM
has open, with ``.lck`` files beside them: VMware's "lock files" documentation,
and the ``.lck-XXX`` files of the ESX 4.0 Configuration Guide on NFS).  So the claim
is vmigrate's own file, written where every workspace looks: beside Alice's
``.vmx``.  Only a real ESXi shows that writing a small dot-file there over SSH
works under lockdown / ``execInstalledOnly`` and that no vSphere tool (e.g. a
Storage vMotion, which moves the VM's folder) trips over it (a guess: not verified).
"""

from __future__ import annotations

import json
from pathlib import Path

from vmigrate_lib.control.host import PowerState
from vmigrate_lib.engine.claim import CLAIM_FILE

FAST = ("--shutdown-time", "1s", "--boot-time", "1s")


def _mid(lab, ws: str) -> str:
    return str(json.loads((lab.workdir / ws / "state.json").read_text())["migration_id"])


def test_second_migration_of_a_vm_is_refused_until_the_first_lets_go(make_lab) -> None:
    """Refused at preflight and sync (nothing made), then at go/no-go; freed by a cutover.

    Proves: the claim names migration, workspace and destination; a wrong id
    cannot release it; after an operator's release the *other* migration holds
    it and the first one's cutover is a no-go (Alice keeps running, no Bob
    registered); the second completes and its claim is gone.
    """
    lab = make_lab(rate_mb_s=1.0)
    p1 = lab.write_params(lab.workdir / "p1.yaml", workspace=str(lab.workdir / "ws1"),
                          dest_name="bob1", downtime_budget="60s")
    p2 = lab.write_params(lab.workdir / "p2.yaml", workspace=str(lab.workdir / "ws2"),
                          dest_name="bob2", downtime_budget="60s")
    claim = lab.ds_dir("esx-a") / "alice" / CLAIM_FILE
    r = lab.cli("-q", "sync", "-p", str(p1), "--cycles", "2")  # a delta: go/no-go can plan
    assert r.returncode == 0, r.stderr
    mid1 = _mid(lab, "ws1")
    assert json.loads(claim.read_text())["migration_id"] == mid1

    for cmd in ("preflight", "sync"):
        r = lab.cli("-q", cmd, "-p", str(p2))
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1
        assert f"migration {mid1}" in line and str(lab.workdir / "ws1") in line and "bob1" in line
        assert f"release-claim -p <params> --migration-id {mid1}" in line
    assert not (lab.ds_dir("esx-b") / "bob2").exists() and not (lab.workdir / "ws2").exists()

    r = lab.cli("-q", "release-claim", "-p", str(p2), "--migration-id", "000000000000")
    assert r.returncode == 2 and claim.exists()
    r = lab.cli("-q", "release-claim", "-p", str(p2), "--migration-id", mid1)
    assert r.returncode == 0, r.stderr
    assert not claim.exists()
    r = lab.cli("-q", "sync", "-p", str(p2), "--cycles", "2")
    assert r.returncode == 0, r.stderr
    mid2 = _mid(lab, "ws2")
    assert json.loads(claim.read_text())["migration_id"] == mid2

    r = lab.cli("-q", "cutover", "-p", str(p1), *FAST)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"migration {mid2}" in r.stderr and "bob2" in r.stderr
    assert lab.host().power_state("alice") == PowerState.ON
    assert not lab.host("esx-b").vm_exists("bob1")

    r = lab.cli("-q", "cutover", "-p", str(p2), *FAST)
    assert r.returncode == 0, r.stderr
    assert lab.host("esx-b").power_state("bob2") == PowerState.ON
    assert not claim.exists()  # released by the completed cutover
    journal = [json.loads(x) for x in (lab.workdir / "ws2" / "journal.jsonl").open()]
    assert [j["reason"] for j in journal if j["type"] == "source_claim_released"] == ["cutover done"]


def test_abandon_releases_the_claim_and_a_later_sync_takes_it_again(make_lab) -> None:
    """``vmigrate abandon`` frees Alice for another migration; the copy and workspace stay.

    Proves the explicit-abandon path and that a re-sync of the abandoned
    migration (when nobody else claimed Alice) simply claims her again.
    """
    lab = make_lab(rate_mb_s=1.0)
    p1 = lab.write_params(lab.workdir / "p1.yaml", workspace=str(lab.workdir / "ws1"),
                          dest_name="bob1")
    claim = lab.ds_dir("esx-a") / "alice" / CLAIM_FILE
    assert lab.cli("-q", "sync", "-p", str(p1)).returncode == 0
    r = lab.cli("-q", "abandon", "-p", str(p1))
    assert r.returncode == 0, r.stderr
    assert not claim.exists() and (lab.ds_dir("esx-b") / "bob1").is_dir()
    assert (Path(lab.workdir) / "ws1" / "state.json").exists()
    assert lab.cli("-q", "sync", "-p", str(p1)).returncode == 0
    assert json.loads(claim.read_text())["migration_id"] == _mid(lab, "ws1")
