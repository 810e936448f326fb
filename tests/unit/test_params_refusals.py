"""Parameters: what a params file may not hold (issue 9): pasted secrets, unbounded values,
bad names, ports and URLs, defective files, keys of another host kind; never echoed."""

from pathlib import Path

import pytest

from vmigrate_lib.errors import ParameterError
from vmigrate_lib.params import LabHostParams, VsphereHostParams, load, validate

from .params_base import BASE

SECRET = "Hunter2-S3cret"  #: a pasted credential: must never be echoed


def _refused(raw: dict, words: str, base_dir: Path | None = None) -> str:
    with pytest.raises(ParameterError) as exc:
        validate(raw, base_dir=base_dir)
    text = exc.value.one_line()
    assert words in text, text
    assert SECRET not in text and SECRET not in repr(exc.value.to_dict())
    assert "\n" not in text and len(text) < 600
    return text


@pytest.mark.parametrize("source, words", [
    ({"password": SECRET}, "source.password holds a secret"),
    ({"ssh_password": SECRET}, "source.ssh_password holds a secret"),
    ({"url": f"ssh://root:{SECRET}@10.0.0.1"}, "source.url holds a password"),
    ({"type": "vsphere", "url": f"https://administrator:{SECRET}@vc.example.org/sdk"},
     "source.url holds a password"),
    ({"type": "vsphere", "host": f"root:{SECRET}@esx-a"}, "source.host holds a password"),
    ({"ssh_key": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n-----END OPENSSH PRIVATE KEY-----\n"},
     "source.ssh_key holds key material"),
    ({"ssh_key": f"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ{SECRET}" * 8},
     "source.ssh_key holds key material"),
    ({"type": "vsphere", "password_env": SECRET},
     "source.password_env must name an environment variable"),
    ({"type": "vsphere", "user": f"administrator@vsphere.local:{SECRET}"},
     "source.user: a user name has no ':'"),
    ({"ssh_user": f"root:{SECRET}"}, "source.ssh_user: a user name has no ':'"),
    ({"ssh_password_env": f"PW {SECRET}"}, "source.ssh_password_env must name an environment"),
])
def test_pasted_secrets_are_refused_and_never_echoed(source: dict, words: str) -> None:
    """A value where a reference belongs is refused by name; the value is not repeated."""
    _refused({**BASE, "source": {"host": "esx-a", **source}}, words)


@pytest.mark.parametrize("change, words", [
    ({"downtime_budget": float("nan")}, "downtime_budget: must be a finite"),
    ({"downtime_budget": float("inf")}, "downtime_budget: must be a finite"),
    ({"cutover": {"max_sync_age": float("nan")}}, "cutover.max_sync_age: must be a finite"),
    ({"cutover": {"shutdown_timeout": float("inf")}}, "must be a finite"),
    ({"sync": {"interval": "9" * 400}}, "sync.interval: must be a finite"),
    ({"sync": {"hash_block": float("inf")}}, "sync.hash_block: must be a finite"),
    ({"sync": {"hash_block": float("nan")}}, "sync.hash_block: must be a finite"),
    ({"source": {"host": "a", "bwlimit": float("inf")}}, "source.bwlimit: must be a finite"),
    ({"sync": {"certify_block": "9" * 400 + "GiB"}}, "must be a finite"),
])
def test_durations_and_sizes_are_finite(change: dict, words: str) -> None:
    """``.nan`` compared false with every limit (the sync-age go/no-go never said no);
    ``.inf`` made int() raise OverflowError (a traceback)."""
    _refused({**BASE, **change}, words)


@pytest.mark.parametrize("change, words", [
    ({"vm": "alice\n"}, "vm: not a valid VM name"),
    ({"dest_name": "bob\n"}, "dest_name: not a valid VM name"),
    ({"change_id": "CHG-1\n"}, "change_id: not a change reference"),
    ({"source": {"host": "../../etc"}}, "source.host: a lab host is a name"),
    ({"source": {"host": "esx-a/../../x"}}, "source.host: a lab host is a name"),
    ({"destination": {"host": "esx-b", "datastore": "../ds"}}, "destination.datastore"),
    ({"source": {"host": "esx-a", "ssh_port": 0}}, "source.ssh_port: must be from 1 to 65535"),
    ({"source": {"host": "esx-a", "ssh_port": 70000}}, "from 1 to 65535"),
    ({"source": {"host": "esx-a", "url": "ssh://10.0.0.1:70000"}}, "source.url: the port"),
    ({"source": {"host": "esx-a", "url": "ssh://10.0.0.1:ssh"}}, "source.url: the port"),
    ({"source": {"host": "esx-a", "url": "ssh://"}}, "source.url: not an ssh URL"),
    ({"source": {"host": "esx-a", "url": "ssh://host/some/path"}}, "source.url: not an ssh URL"),
    ({"source": {"host": "esx-a", "url": "http://host"}}, "source.url: a lab host's url"),
    ({"source": {"type": "vsphere", "host": "esx-a:99999"}}, "source.host: the port"),
    ({"source": {"type": "vsphere", "host": "esx-a", "url": "https://vc:0/sdk"}},
     "source.url: the port"),
    ({"source": {"type": "vsphere", "host": "esx-a", "url": "vc:https"}}, "source.url: the port"),
    ({"operator": "me\x00"}, "operator: holds a control character"),
    ({"workspace": "ws\x00"}, "workspace: holds a control character"),
    ({"cutover": {"network_map": {"VM Network": "prod\n"}}}, "cutover.network_map"),
])
def test_names_ports_and_urls(change: dict, words: str) -> None:
    _refused({**BASE, **change}, words)


def test_unbounded_values_are_never_formatted() -> None:
    """A huge value (what an alias bomb expands to) is named, never printed."""
    huge = ["x" * 100] * 100_000
    for change in ({"cutover": {"network_map": huge}}, {"cutover": {"probes": huge}},
                   {"vm": "y" * 1_000_000}, {"sync": {"certify": "z" * 1_000_000}},
                   {"hosts": huge}, {"change_id": huge}):
        text = _refused({**BASE, **change}, "parameter")
        assert "xxxxxxxxxx" not in text and "yyyyyyyyyy" not in text and "zzzzzzzzzz" not in text


def test_references_and_names_that_are_fine() -> None:
    p = validate({**BASE, "source": {
        "type": "vsphere", "host": "root@esx-a.example.org:2222", "url": "https://vc/sdk",
        "password_env": "VC_PASSWORD", "ssh_password_env": "_ESX_PW2",
        "ssh_key": "~/.ssh/id_ed25519", "datastore": "datastore 1 (ssd)"}})
    assert isinstance(p.source, VsphereHostParams) and p.source.password_env == "VC_PASSWORD"
    p = validate({**BASE, "source": {"host": "esx-a", "url": "ssh://migrate@[fd00::1]:2222/"}})
    assert p.source.url.endswith(":2222/")


@pytest.mark.parametrize("data, words", [
    (b"vm: alice\nworkspace: ws\nvm: bob\n", "key vm appears twice (lines 1 and 3)"),
    (b"source: {host: a, host: b}\n", "key source.host appears twice"),
    (b"vm: al\xe9ce\n", "is not UTF-8 text (byte offset 6)"),
    (b"vm: alice\x00\n", "holds a NUL byte (byte offset 9)"),
    (b"vm: alice\nsource: {host: a\n", "is not valid YAML at line"),
    (b"vm: \x07alice\n", "is not valid YAML"),
    (b"a: &a [*a]\n", "recursive YAML alias"),
    (b"- a\n", "must hold a mapping"),
])
def test_params_file_defects_are_one_line(tmp_path: Path, data: bytes, words: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_bytes(data)
    with pytest.raises(ParameterError) as exc:
        load(f)
    assert words in exc.value.one_line()


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    """A billion-laughs file: nine levels of nine aliases (387 million strings)."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("vm: alice\ncutover: {network_map: *a9}")
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParameterError) as exc:
        load(f)
    assert "expands to more than" in str(exc.value) and len(str(exc.value)) < 400


def test_yaml_aliases_in_reason_are_fine(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("vm: alice\nworkspace: ws\nsource: &side {type: lab, host: esx-a}\n"
                 "destination: {<<: *side, host: esx-b}\n")
    assert load(f).destination.host == "esx-b"


def test_params_file_too_large(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_bytes(b"# " + b"x" * (2 << 20) + b"\nvm: alice\n")
    with pytest.raises(ParameterError, match="larger than"):
        load(f)


@pytest.mark.parametrize("side, key, value, kind", [
    ("source", "verify_tls", False, "lab"),
    ("source", "password_env", "VC_PW", "lab"),
    ("destination", "datastore_root", "/mnt", "lab"),
    ("source", "lab_root", "my-lab-dir", "vsphere"),
])
def test_a_key_of_another_host_kind_is_refused(side: str, key: str, value: object,
                                                 kind: str) -> None:
    """A host section takes only its kind's keys (HostParams is a tagged union): a
    vSphere-only key on a lab host, or lab_root on a vSphere host, is refused in one line
    naming the key and the kind.  Before: accepted silently (one flat HostParams), so
    ``verify_tls: false`` on a lab host looked like a setting and did nothing."""
    host = {"type": kind, "host": "esx-a" if kind == "lab" else "esx1.example.org"}
    raw = {**BASE, side: {**host, key: value}}
    if kind == "vsphere":
        raw = {**raw, "source": {**host, key: value}, "destination": dict(host)}
    with pytest.raises(ParameterError) as exc:
        validate(raw)
    msg = str(exc.value)
    assert f"{side}.{key}" in msg and f"a {kind} host" in msg and "\n" not in msg
    assert exc.value.fields["parameter"] == f"{side}.{key}"
    assert str(value) not in msg.replace(f"{side}.{key}", "")


def test_each_host_kind_keeps_its_keys() -> None:
    """The same YAML keys as before: a lab host's lab_root and SSH keys, a vSphere host's
    API keys; ``type`` selects the kind and mypy narrows by it."""
    p = validate({**BASE, "source": {"type": "lab", "host": "esx-a", "lab_root": "lab",
                                     "url": "ssh://root@10.0.0.11:22", "ssh_mode": "auto"},
                  "destination": {"type": "vsphere", "host": "esx1.example.org",
                                  "user": "root", "password_env": "VC_PW",
                                  "verify_tls": False, "datastore_root": "/vmfs/volumes"}})
    assert isinstance(p.source, LabHostParams) and p.source.lab_root == "lab"
    assert isinstance(p.destination, VsphereHostParams)
    assert p.destination.type == "vsphere" and p.destination.verify_tls is False
    assert p.to_dict()["destination"]["password_env"] == "VC_PW"
