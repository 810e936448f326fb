"""An SSH password from the OS keyring logs in to a real OpenSSH sshd (password auth).

The keyring is keyrings.alt's file backend in the test's folder (tests/peers/filekeyring.py),
the sshd a real one with PasswordAuthentication for a throwaway local user
(tests/peers/sshusers.py).  ESXi's sshd is OpenSSH too; only a real ESXi host would show
its own login policy (lockout after failed logins: vSphere Security guide, "ESXi Account
Lockout Behavior", option Security.AccountLockFailures).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.filekeyring import file_keyring
from tests.peers.sshd import SshHost
from tests.ssh.sshdp import settings_for
from vmigrate_lib.dataplane import open_ssh_datastore
from vmigrate_lib.errors import AuthenticationError


@pytest.fixture
def root() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="vmg-kr-", dir="/tmp")  # reachable by the throwaway user
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_keyring_password_logs_in(ssh_password_loopback: SshHost, tmp_path: Path,
                                  root: str) -> None:
    """SERVICE/USER (the syntax the API uses too) and SERVICE (the login's user) both log in;
    a wrong stored password is refused by sshd and never shown.
    Before: SSH read SERVICE:USER, so vmigrate-test/USER found no entry."""
    h = ssh_password_loopback
    assert h.password
    with file_keyring(tmp_path) as kr:
        kr.set_password("vmigrate-test", h.user, h.password)
        for ref in (f"vmigrate-test/{h.user}", "vmigrate-test"):
            ds = open_ssh_datastore("kr", root, settings_for(h, key_filename="",
                                                             password_keyring=ref))
            try:
                assert ds.free_space() > 0, ref
            finally:
                ds.close()
        wrong = "Wr0ng-Stored-Pw"
        kr.set_password("vmigrate-test", h.user, wrong)
        ds = open_ssh_datastore("kr", root, settings_for(h, key_filename="",
                                                         password_keyring="vmigrate-test"))
        with pytest.raises(AuthenticationError, match="refused") as exc:
            ds.free_space()
        ds.close()
        line = exc.value.one_line()
        assert wrong not in line and h.password not in line
