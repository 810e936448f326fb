"""The plain ``vmigrate sync`` and ``vmigrate cutover`` refuse a finished migration.

Issue 14 item 4 made the runbooks (``vmigrate run``) refuse a workspace whose
cutover is done; the CLI commands themselves still ran another delta cycle from
Alice's stopped disks while Bob ran (sync), or replayed the old attempt (cutover).
This proves, against the lab, that after a real cutover both commands exit 2 with
one line saying when the VM was cut over and how to start again, and that the
journal gains no cycle, preflight or cutover record.  Nothing here needs a real
ESXi host: the refusal reads only the workspace's state.json.
"""

from __future__ import annotations

from tests.cutover.cutover_helpers import Lab, Watch, cli, journal

FAST = ("--shutdown-time", "1s", "--boot-time", "1s")


def test_sync_and_cutover_refused_after_cutover(lab: Lab) -> None:
    r = cli(lab, "sync", "--cycles", "2")
    assert r.returncode == 0, r.stderr
    with Watch(lab):
        r = cli(lab, "cutover", "--force", "--certify", "none", *FAST)
    assert r.returncode == 0, r.stdout + r.stderr
    before = len(journal(lab))
    for args in (("sync", "--cycles", "1"), ("sync", "--until-converged", *FAST),
                 ("cutover", *FAST)):
        r = cli(lab, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        err = r.stderr.strip().splitlines()
        assert "already cut over to" in err[0] and " UTC " in err[0], err
        assert "Traceback" not in r.stderr
        assert "new workspace" in r.stderr
    assert len(journal(lab)) == before  # nothing recorded, nothing changed
    assert lab.bob_on() and not lab.alice_on()
