"""A migration that cannot open leaves no vCenter session behind.

``open_migration`` logs in to both hosts, then reads the workspace.  A workspace that cannot
be read (a corrupt ``state.json``: StateCorrupt, exit 2) used to leave both logins open in
the process: for a CLI run until it exited, in a runbook kernel until the kernel ended.
vCenter keeps a session until it is logged out or idles out, and counts it against its
session limit (SessionManager.sessionList lists them; vSphere Web Services API,
SessionManager).  The simulator keeps the same list (govmomi simulator
SessionManager), so the count is read there, before and after.  What only a real vCenter
adds: its idle timeout and limit, which this test does not reach.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.errors import StateCorrupt
from vmigrate_lib.params import validate
from vmigrate_lib.session import open_migration


def test_a_workspace_that_cannot_be_read_logs_out(tmp_path: Path, vcsim_binary: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "state.json").write_text("{not json")
    with vcsim_peer.run_vcsim(binary=vcsim_binary) as src, \
            vcsim_peer.run_vcsim(binary=vcsim_binary) as dst:
        monkeypatch.setenv(vsim.PW_ENV, src.password)

        def host(sim: vcsim_peer.VcsimInfo) -> dict[str, Any]:
            return {"type": "vsphere", "url": sim.url, "host": "localhost.localdomain",
                    "user": sim.user, "password_env": vsim.PW_ENV, "verify_tls": False}

        raw = {"vm": "alice", "dest_name": "bob", "workspace": str(ws),
               "source": host(src), "destination": host(dst)}
        with vsim.pyvmomi(src) as si_a, vsim.pyvmomi(dst) as si_b:
            def sessions() -> tuple[int, int]:
                return (len(si_a.content.sessionManager.sessionList),
                        len(si_b.content.sessionManager.sessionList))

            before = sessions()
            with pytest.raises(StateCorrupt):
                open_migration(validate(raw))
            assert sessions() == before


def test_a_failing_keepalive_is_said_once_and_its_recovery(
        tmp_path: Path, vcsim_binary: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The keep-alive (a call every few minutes so vCenter does not end an idle session)
    failed in silence: the session could idle out and nothing said why.  Now its first
    failure is one warning (the CLI prints library warnings as ``vmigrate: warning:``
    lines), not one per beat, and its recovery another.  The simulator stopped (SIGSTOP)
    plays a host that stops answering, then resumes (SIGCONT)."""
    import logging
    import signal
    import time

    from vmigrate_lib.control.vsphere.connection import Connection

    with vcsim_peer.run_vcsim(binary=vcsim_binary) as sim:
        monkeypatch.setenv(vsim.PW_ENV, sim.password)
        hp = validate({"vm": "a", "workspace": str(tmp_path / "ws"),
                       "source": {"type": "vsphere", "url": sim.url, "host": "x",
                                  "user": sim.user, "password_env": vsim.PW_ENV,
                                  "verify_tls": False},
                       "destination": {"type": "lab", "host": "b"}}).source
        caplog.set_level(logging.WARNING, logger="vmigrate.vsphere")
        conn = Connection(hp, keepalive=0.2, call_timeout=0.5)  # type: ignore[arg-type]
        def said() -> list[str]:
            return [r.getMessage() for r in caplog.records if "keep-alive" in r.getMessage()]

        def wait_for(n: int) -> None:  # a loaded machine is slow, not wrong
            deadline = time.monotonic() + 30
            while len(said()) < n and time.monotonic() < deadline:
                time.sleep(0.1)

        try:
            sim.proc.send_signal(signal.SIGSTOP)
            wait_for(1)
            time.sleep(1.5)  # several more beats time out: still one line
            sim.proc.send_signal(signal.SIGCONT)
            wait_for(2)
        finally:
            sim.proc.send_signal(signal.SIGCONT)
            conn.close()
    assert len(said()) == 2, said()
    assert "failed" in said()[0] and said()[1].endswith("answers again"), said()
