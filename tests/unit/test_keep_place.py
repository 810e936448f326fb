"""The keeper's folder, names and digest (dataplane/keep/place.py), and its request lines.

The folder rule is OpenSSH's for a ControlPath's folder and tmux's for its socket folder:
a real folder, the user's own, no access for anyone else; anything else is refused, never
repaired.  The digest decides which keeper serves a command: it changes with what
decides the host reached and how it is verified (known_hosts content included), never
with a secret (a password is a reference; its value is never read).  Nothing here needs
a host.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from vmigrate_lib.dataplane.keep import place, wire
from vmigrate_lib.dataplane.keep.hold import root_allowed
from vmigrate_lib.dataplane.sshconfig import SshSettings
from vmigrate_lib.errors import KeeperUnsafe


def test_the_folder_must_be_private_and_real(tmp_path: Path) -> None:
    ok = place.check_dir(tmp_path / "k", create=True)
    assert os.stat(ok).st_mode & 0o777 == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    with pytest.raises(KeeperUnsafe, match="mode 0700"):
        place.check_dir(loose)
    link = tmp_path / "link"
    link.symlink_to(ok)
    with pytest.raises(KeeperUnsafe):
        place.check_dir(link)
    assert KeeperUnsafe.exit_code == 2


def test_the_digest_follows_known_hosts_not_secrets(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("[10.0.0.1]:22 ssh-ed25519 AAAAone\n")
    s = SshSettings(host="10.0.0.1", known_hosts=str(kh), password_env="VMG_PW")
    monkeypatch.setenv("VMG_PW", "first-secret")
    d1 = place.settings_digest(s)
    monkeypatch.setenv("VMG_PW", "another-secret")
    assert place.settings_digest(s) == d1
    kh.write_text("[10.0.0.1]:22 ssh-ed25519 AAAAtwo\n")
    assert place.settings_digest(s) != d1
    assert place.settings_digest(SshSettings(host="10.0.0.1", known_hosts=str(kh),
                                             user="other")) != place.settings_digest(s)


def test_a_keeper_for_other_settings_is_said(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = place.check_dir(place.keep_dir(), create=True)
    s = SshSettings(host="10.0.0.1", port=2222, known_hosts=str(tmp_path / "kh"))
    assert place.find(s) == place.Found(None)
    (folder / f"{place.host_stem(s)}.{'f' * 20}.sock").touch()
    found = place.find(s)
    assert found.socket is None and "holds other settings" in found.why
    mine = folder / f"{place.host_stem(s)}.{place.settings_digest(s)}.sock"
    mine.touch()
    assert place.find(s).socket == mine


def test_only_datastore_folders_under_the_prefix() -> None:
    p = "/vmfs/volumes"
    assert root_allowed(p, "/vmfs/volumes/ds1")
    for bad in ("/vmfs/volumes/ds1/../../etc", "/etc", "/vmfs/volumes", "/vmfs/volumes/",
                "vmfs/volumes/ds1", "/vmfs/volumes/ds1/sub", "/vmfs/volumes/.."):
        assert not root_allowed(p, bad), bad


def test_a_request_line_is_read_without_what_follows() -> None:
    a, b = socket.socketpair()
    try:
        a.sendall(b'{"op": "agent"}\nAGENT BYTES')
        assert wire.recv_line(b) == {"op": "agent"}
        assert b.recv(100) == b"AGENT BYTES"
        t = threading.Thread(target=lambda: a.sendall(b"x" * (wire.MAX_LINE + 10)))
        t.start()
        with pytest.raises(ValueError, match="too long"):
            wire.recv_line(b)
        t.join()
        assert wire.peer_uid(b)[1] == os.getuid()
    finally:
        a.close()
        b.close()
