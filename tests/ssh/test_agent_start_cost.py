"""Start-up of a command over SSH (issue 13 item 3): an installed agent starts in one step.

Each command opens a new SSH connection; before, every connection first ran the install
check (one exec channel and one python3 start on the host), then the launcher (another
exec and python3, which checks the file's digest again).  Now the launcher runs first
and the install only when it says the file is missing (or not the agent's).  Real sshd;
what only a real ESXi host would show: what one python3 start costs there (busybox ash,
the host's CPU), which is what each saved exec saves.
"""

from __future__ import annotations

import os
from pathlib import Path

import paramiko
import pytest

from tests.peers.sshd import SshHost
from tests.ssh.sshdp import settings_for
from vmigrate_lib.dataplane import open_ssh_datastore


def _execs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = paramiko.Channel.exec_command

    def spy(self: paramiko.Channel, command: str) -> None:
        seen.append("install" if "need" in command else "launch")
        real(self, command)

    monkeypatch.setattr(paramiko.Channel, "exec_command", spy)
    return seen


def test_installed_agent_starts_with_one_exec(ssh_loopback: SshHost, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ['install', 'launch'] for every new connection."""
    os.chmod(tmp_path, 0o755)
    agent_dir = tmp_path / "agents"
    agent_dir.mkdir()
    os.chmod(agent_dir, 0o1777)
    seen = _execs(monkeypatch)
    first = open_ssh_datastore("d", str(tmp_path), settings_for(ssh_loopback,
                                                                agent_dir=str(agent_dir)))
    try:
        assert first.free_space() > 0
    finally:
        first.close()
    assert seen == ["launch", "install", "launch"], seen  # not there yet: tried, installed
    seen.clear()
    again = open_ssh_datastore("d", str(tmp_path), settings_for(ssh_loopback,
                                                                agent_dir=str(agent_dir)))
    try:
        assert again.free_space() > 0
    finally:
        again.close()
    assert seen == ["launch"], seen
