"""An exclusive ``write_file`` (the source claim, the destination owner marker) is atomic.

Two migrations that claim the same source VM at the same instant each run their own
agent process on host A.  Before, the agent checked that the file was absent and then
renamed its temporary file over it: both agents could pass the check, and both
believed they owned Alice (the last rename won, the first claim vanished silently).
This test races two real agent processes over many rounds on a real folder and
proves exactly one wins each round, and the winner's content is what is on disk.
What only a real host would show: whether VMFS supports ``link(2)`` (the agent falls
back to ``O_EXCL`` creation where it does not; both are exclusive by POSIX).
"""

from __future__ import annotations

import base64
import errno
import io
import multiprocessing as mp
from pathlib import Path

from vmigrate_lib.dataplane.agent.server import Agent

ROUNDS = 200


def racer(root: str, who: int, barrier: object, out: object) -> None:
    agent = Agent(root, io.BytesIO(), io.BytesIO())
    wins = []
    for r in range(ROUNDS):
        barrier.wait()  # type: ignore[attr-defined]
        data = base64.b64encode(f"{who}".encode()).decode()
        try:
            agent.op_write_file({"path": f"claim-{r}", "data": data, "exclusive": True})
            wins.append(r)
        except OSError as exc:
            assert exc.errno == errno.EEXIST
    out.put((who, wins))  # type: ignore[attr-defined]


def test_two_agents_racing_for_one_claim_one_wins(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=racer, args=(str(tmp_path), w, barrier, out)) for w in (0, 1)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    both = sorted(set(results[0]) & set(results[1]))
    assert not both, f"both agents won rounds {both[:10]} ({len(both)} of {ROUNDS})"
    for r in range(ROUNDS):
        winner = 0 if r in results[0] else 1
        assert r in results[winner], f"nobody won round {r}"
        assert (tmp_path / f"claim-{r}").read_text() == str(winner)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name], "temporary files left"


def test_exclusive_write_refuses_an_existing_file_and_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "owner").write_bytes(b"first")
    agent = Agent(str(tmp_path), io.BytesIO(), io.BytesIO())
    try:
        agent.op_write_file({"path": "owner", "data": base64.b64encode(b"second").decode(),
                             "exclusive": True})
    except OSError as exc:
        assert exc.errno == errno.EEXIST
    else:
        raise AssertionError("an exclusive write replaced an existing file")
    assert (tmp_path / "owner").read_bytes() == b"first"
