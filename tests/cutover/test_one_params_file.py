"""One params file serves every face: preflight, sync, cutover and the runbooks.

The file carries the change (change_id, hosts) and the sync and cutover sections;
the CLI takes its defaults from them and its flags override them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cutover.cutover_helpers import (
    Lab,
    Watch,
    assert_bob_has_every_acked_block,
    cli,
    journal,
)

FAST = ("--shutdown-time", "1s", "--boot-time", "1s")


def test_one_params_file_for_every_face(lab: Lab, tmp_path: Path) -> None:
    raw = yaml.safe_load(lab.params_file.read_text())
    raw.update({
        "change_id": "CHG-ONE-FILE", "hosts": "lab",
        "sync": {"max_cycles": 1, "target_interval": "0.5s"},
        "cutover": {"shutdown_timeout": "2m", "max_sync_age": "1h", "certify": "none",
                    "ready_timeout": "1m", "network_map": {"VM Network": "lab-net"}},
    })
    lab.params_file.write_text(yaml.safe_dump(raw))

    r = cli(lab, "preflight")
    assert r.returncode == 0, r.stderr
    # --until-converged without --max-cycles: sync.max_cycles (1: the seed only)
    r = cli(lab, "sync", "--until-converged", *FAST)
    assert r.returncode == 0, r.stderr
    assert "sync: 1 cycle(s); stopped: max cycles" in r.stdout
    r = cli(lab, "sync", "--cycles", "2")
    assert r.returncode == 0, r.stderr

    # the sync runbook, from the same file (papermill; evidence under the workspace)
    run = subprocess.run(
        [sys.executable, "-m", "vmigrate_lib.faces.cli", "--quiet", "run", "sync",
         "--params", str(lab.params_file)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ),
        check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    folder = Path(run.stdout.split("evidence: ")[-1].strip())
    result = json.loads((folder / "run.json").read_text())
    assert result["change_id"] == "CHG-ONE-FILE" and result["result"]["cycles_run"] == 1
    assert len(journal(lab, "preflight")) == 3  # CLI sync x2 and the runbook: once each

    # go/no-go wants a whole-disk proof in the last 3 cycles (cutover.full_certify_within,
    # issue 11 item 8): the seed was 3 cycles ago, so prove it while Alice runs
    r = cli(lab, "certify")
    assert r.returncode == 0, r.stderr
    # the cutover: the file's cutover section, with one flag on top
    with Watch(lab):
        r = cli(lab, "cutover", "--certify", "changed", *FAST)
    assert r.returncode == 0, r.stdout + r.stderr
    opts = journal(lab, "cutover_start")[-1]["options"]
    assert (opts["shutdown_timeout"], opts["max_sync_age"], opts["ready_timeout"]) == (
        120.0, 3600.0, 60.0)  # from the file
    assert opts["certify"] == "changed" and opts["force"] is False  # the flag won
    assert opts["network_map"] == {"VM Network": "lab-net"}
    assert lab.b.handle("bob").config().networks == ["lab-net"]  # the map reached Bob
    assert_bob_has_every_acked_block(lab, exact=False)


def test_force_never_comes_from_a_file(lab: Lab) -> None:
    raw = yaml.safe_load(lab.params_file.read_text())
    for bad in ({**raw, "force": True}, {**raw, "cutover": {"force": True}}):
        lab.params_file.write_text(yaml.safe_dump(bad))
        for args in (("cutover",), ("run", "cutover"), ("preflight",)):
            r = cli(lab, *args)
            assert r.returncode == 2, (args, r.stderr)
            assert "force does not belong in a params file" in r.stderr, r.stderr
            assert "--force" in r.stderr
    lab.params_file.write_text(yaml.safe_dump(raw))
    r = cli(lab, "run", "sync", "--force")
    assert r.returncode == 2 and "cutover runbook only" in r.stderr
    assert not (Path(raw["workspace"]) / "state.json").exists()  # nothing touched
