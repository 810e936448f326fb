"""Passwords by reference, one syntax for the vSphere API and for SSH (vmigrate_lib/credentials.py).

Against a real keyring backend (keyrings.alt's PlaintextKeyring, its file in the test's
folder: tests/peers/filekeyring.py) and real environment variables, through the two
production call sites (``control.vsphere.connection.resolve_password`` and
``dataplane.sshconfig.resolve_password``) and the real CLI.  What only a real host would
add: that vCenter / ESXi sshd accept the password found (tests/ssh/test_keyring_login.py
logs in to a real OpenSSH sshd with it), and a real desktop keyring's own failures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.filekeyring import file_keyring
from vmigrate_lib.control.vsphere.connection import resolve_password as api_password
from vmigrate_lib.dataplane.sshconfig import SshSettings
from vmigrate_lib.dataplane.sshconfig import resolve_password as ssh_password
from vmigrate_lib.errors import AuthenticationError, ParameterError
from vmigrate_lib.params import VsphereHostParams, validate

SECRET = "Hunter2-S3cret"
VC_SECRET = "Vc-Pa55-Secret"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def kr(tmp_path: Path) -> Iterator[Any]:
    with file_keyring(tmp_path) as backend:
        yield backend


def _vsphere(**kw: str) -> dict[str, Any]:
    return {"type": "vsphere", "host": "esx-a", "url": "https://vc",
            "user": "administrator@vsphere.local", **kw}


def _params(tmp_path: Path, source: dict[str, Any]) -> Any:
    return validate({"vm": "alice", "workspace": "ws", "source": source,
                     "destination": {"type": "lab", "host": "esx-b"}}, base_dir=tmp_path)


def _messages(err: BaseException) -> str:
    """Everything an error shows or records: its line, its hint, its journal form."""
    assert isinstance(err, AuthenticationError | ParameterError)
    return err.one_line() + json.dumps(err.to_dict())


def test_one_syntax_resolves_for_the_api_and_for_ssh(kr: Any, tmp_path: Path) -> None:
    """SERVICE/USER and SERVICE (the login's user) mean the same for both logins.
    Before: SSH read SERVICE:USER, so SSH with vmigrate-esx/root found no entry."""
    kr.set_password("vmigrate-esx", "root", SECRET)
    kr.set_password("vmigrate-vc", "administrator@vsphere.local", VC_SECRET)
    for api_ref, ssh_ref in (("vmigrate-vc/administrator@vsphere.local", "vmigrate-esx/root"),
                             ("vmigrate-vc", "vmigrate-esx")):
        p = _params(tmp_path, _vsphere(password_keyring=api_ref, ssh_password_keyring=ssh_ref))
        assert api_password(p.source) == VC_SECRET
        assert ssh_password(SshSettings.from_host_params(p.source)) == SECRET
    # the SSH reference names another user than the login's: that entry is read
    kr.set_password("vmigrate-esx", "backup", "other")
    s = SshSettings(host="esx-a", user="root", password_keyring="vmigrate-esx/backup")
    assert ssh_password(s) == "other"


def test_missing_entry_names_parameter_and_user_not_the_reference(kr: Any) -> None:
    kr.set_password("vmigrate-esx", "root", SECRET)
    s = SshSettings(host="esx-a", user="nobody", password_keyring="vmigrate-esx")
    with pytest.raises(AuthenticationError) as exc:
        ssh_password(s)
    err = exc.value
    assert err.exit_code == 2
    assert "no keyring entry for user 'nobody'" in err.message
    assert err.fields["parameter"] == "ssh_password_keyring" and err.fields["user"] == "nobody"
    assert "keyring set SERVICE nobody" in err.hint
    assert "vmigrate-esx" not in _messages(err) and SECRET not in _messages(err)
    hp = VsphereHostParams(host="vc", user="u", password_keyring="Pasted-Secret-9")
    with pytest.raises(AuthenticationError) as exc:
        api_password(hp)
    assert exc.value.fields["parameter"] == "password_keyring"
    assert "Pasted-Secret-9" not in _messages(exc.value)


@pytest.mark.parametrize("side", ["api", "ssh"])
def test_empty_or_unset_variable_is_refused(side: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: SSH accepted an empty variable (and offered sshd an empty password)."""
    def resolve() -> str | None:
        if side == "api":
            return api_password(VsphereHostParams(host="vc", user="u",
                                                  password_env="VMG_CRED_PW"))
        return ssh_password(SshSettings(host="esx-a", password_env="VMG_CRED_PW"))

    param = "password_env" if side == "api" else "ssh_password_env"
    monkeypatch.setenv("VMG_CRED_PW", "")
    with pytest.raises(AuthenticationError, match=rf"VMG_CRED_PW \({param}\) is empty") as exc:
        resolve()
    assert "not empty" in exc.value.hint and exc.value.fields["variable"] == "VMG_CRED_PW"
    monkeypatch.delenv("VMG_CRED_PW")
    with pytest.raises(AuthenticationError, match=rf"VMG_CRED_PW \({param}\) is not set"):
        resolve()
    monkeypatch.setenv("VMG_CRED_PW", SECRET)
    assert resolve() == SECRET


def test_empty_keyring_entry_is_refused(kr: Any) -> None:
    kr.set_password("vmigrate-esx", "root", "")
    with pytest.raises(AuthenticationError, match="an empty keyring entry for user 'root'"):
        ssh_password(SshSettings(host="esx-a", password_keyring="vmigrate-esx"))


def test_backend_failure_never_quotes_the_store(kr: Any) -> None:
    """A damaged keyring file whose first line is a password: configparser's error quotes
    that line.  Before: the API path put the backend's text in its message (the secret)."""
    Path(kr.file_path).write_text(f"{SECRET}\n[vmigrate-vc]\nu = x\n")
    with pytest.raises(AuthenticationError) as exc:
        api_password(VsphereHostParams(host="vc", user="u",
                                       password_keyring="vmigrate-vc"))
    assert "failed with MissingSectionHeaderError" in exc.value.message
    assert SECRET not in _messages(exc.value)
    with pytest.raises(AuthenticationError) as exc:
        ssh_password(SshSettings(host="esx-a", password_keyring="vmigrate-vc"))
    assert SECRET not in _messages(exc.value)


@pytest.mark.parametrize("ref, problem", [
    ("vmigrate-esx:root", "separates service and user with '/', not ':'"),
    (f"root:{SECRET}", "separates service and user with '/', not ':'"),
    ("a/b/c", "has more than one '/'"),
    ("/admin", "has an empty service or user"),
    ("vc-store/", "has an empty service or user"),
    ("vmigrate-esx/ root", "has a space around"),
])
@pytest.mark.parametrize("name", ["password_keyring", "ssh_password_keyring"])
def test_other_syntax_refused_at_validation(tmp_path: Path, name: str, ref: str,
                                            problem: str) -> None:
    with pytest.raises(ParameterError) as exc:
        _params(tmp_path, _vsphere(**{name: ref}))
    line = exc.value.one_line()
    assert f"parameter source.{name}: a keyring reference {problem}" in line
    assert "SERVICE/USER" in exc.value.hint and exc.value.exit_code == 2
    assert ref not in _messages(exc.value)
    assert not (tmp_path / "ws").exists()


def test_other_syntax_refused_at_connect_too() -> None:
    """Settings built without params (a library caller) are never looked up misread."""
    with pytest.raises(ParameterError, match="not ':'"):
        ssh_password(SshSettings(host="esx-a", password_keyring="vmigrate-esx:root"))


def test_cli_preflight_refuses_the_colon_form(tmp_path: Path) -> None:
    """`vmigrate preflight -p` on a lab params file: one line, exit 2, nothing created, the
    pasted user:password never repeated.  Before: accepted (SSH read it as SERVICE:USER)."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "vm: alice\nworkspace: ws\n"
        f"source: {{type: lab, host: esx-a, url: 'ssh://root@127.0.0.1',"
        f" ssh_password_keyring: 'root:{SECRET}'}}\n"
        "destination: {type: lab, host: esx-b}\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "preflight", "-p",
                        str(params)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("vmigrate: error: parameter source.ssh_password_keyring: a "
                               "keyring reference separates service and user with '/'")
    assert "SERVICE/USER" in lines[0]
    assert SECRET not in r.stderr + r.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_keyring_not_installed_is_one_clear_error(tmp_path: Path) -> None:
    """keyring is optional: without it, a keyring reference says how to install it."""
    code = ("import sys; sys.modules['keyring'] = None\n"
            "from vmigrate_lib.dataplane.sshconfig import SshSettings, resolve_password\n"
            "from vmigrate_lib.errors import AuthenticationError\n"
            "try:\n"
            "    resolve_password(SshSettings(host='h', password_keyring='svc'))\n"
            "except AuthenticationError as e:\n"
            "    print(e.exit_code, e.one_line())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.stdout.startswith("2 ssh_password_keyring is set but the keyring package is not "
                               "installed"), r.stdout + r.stderr
    assert "vmigrate[keyring]" in r.stdout
