"""Parameters: every face validates the same way, secrets are refused."""

from pathlib import Path

import pytest

from vmigrate_lib.errors import ParameterError
from vmigrate_lib.params import VsphereHostParams, load, merge, validate
from vmigrate_lib.units import parse_duration, parse_size

from .params_base import BASE


def test_valid_params_with_units() -> None:
    p = validate({**BASE, "downtime_budget": "2m", "sync": {"hash_block": "64KiB"}})
    assert p.downtime_budget == 120.0
    assert p.sync.hash_block == 65536
    assert p.target_name == "alice"


@pytest.mark.parametrize(
    "raw, words",
    [
        ({**BASE, "colour": "red"}, "unknown parameter colour"),
        ({k: v for k, v in BASE.items() if k != "vm"}, "missing parameter vm"),
        ({**BASE, "vm": "al ice"}, "not a valid VM name"),
        ({**BASE, "sync": {"certify": "sometimes"}}, "must be one of"),
        ({**BASE, "sync": {"hash_block": "1000"}}, "multiple of 512"),
        ({**BASE, "downtime_budget": "soon"}, "not a duration"),
        ({**BASE, "source": {"type": "lab"}}, "missing parameter source.host"),
        ({**BASE, "source": {"host": "a", "password": "hunter2"}}, "holds a secret"),
        ({**BASE, "sync": {"allow_enable_cbt": "yes"}}, "true or false"),
    ],
)
def test_bad_params_are_named(raw: dict, words: str) -> None:
    with pytest.raises(ParameterError) as exc:
        validate(raw)
    assert words in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("vm: alice\nsource: {host: a\n")
    with pytest.raises(ParameterError, match="not valid YAML at line"):
        load(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="does not exist"):
        load(tmp_path / "nope.yaml")


def test_dotted_overrides() -> None:
    merged = merge(BASE, {"sync.certify": "full", "vm": "bob"})
    assert merged["sync"] == {"certify": "full"} and merged["vm"] == "bob"
    assert BASE.get("sync") is None  # the original is untouched


def test_units() -> None:
    assert parse_size("1.5GiB") == 1610612736
    assert parse_size(4096) == 4096
    assert parse_duration("90s") == 90 and parse_duration("1h") == 3600
    with pytest.raises(ValueError):
        parse_size("12 parsecs")


def test_ssh_transfer_parameters() -> None:
    """The SSH data-plane choices are host parameters, validated like the rest."""
    from vmigrate_lib.dataplane.sshconfig import SshSettings

    p = validate({**BASE, "source": {
        "host": "esx-a", "url": "ssh://root@10.0.0.1", "ssh_mode": "direct",
        "ssh_compress": "zstd", "bwlimit": "50MB/s", "allow_unknown_host_key": True,
        "ssh_direct_key": "/root/.ssh/id_migrate", "ssh_direct_known_hosts": "/root/kh",
    }})
    src = p.source
    assert (src.ssh_mode, src.ssh_compress, src.bwlimit, src.allow_unknown_host_key) == (
        "direct", "zstd", 50_000_000, True)
    assert validate({**BASE, "source": {"host": "a", "bwlimit": "1MiB"}}).source.bwlimit == 1 << 20
    assert validate({**BASE, "source": {"host": "a", "bwlimit": 0}}).source.bwlimit == 0
    dest = p.destination
    assert (dest.ssh_mode, dest.ssh_compress, dest.bwlimit, dest.allow_unknown_host_key) == (
        "relay", "", 0, False)  # defaults: relay, no compression, no cap, unknown keys refused
    s = SshSettings.from_host_params(src)
    assert (s.host, s.mode, s.compress, s.bwlimit, s.allow_unknown_host) == (
        "10.0.0.1", "direct", "zstd", 50e6, True)
    assert (s.direct.identity, s.direct.known_hosts) == ("/root/.ssh/id_migrate", "/root/kh")


@pytest.mark.parametrize(
    "source, words",
    [
        ({"ssh_mode": "teleport"}, "source.ssh_mode: must be one of relay, direct, auto"),
        ({"ssh_compress": "brotli"}, "source.ssh_compress: must be one of"),
        ({"bwlimit": "fast"}, "source.bwlimit: not a size"),
        ({"bwlimit": True}, "source.bwlimit: not a size"),
        ({"allow_unknown_host_key": "yes"}, "true or false"),
    ],
)
def test_bad_ssh_transfer_parameters(source: dict, words: str) -> None:
    with pytest.raises(ParameterError) as exc:
        validate({**BASE, "source": {"host": "esx-a", **source}})
    assert words in str(exc.value)


def test_ssh_example_params_file_is_valid() -> None:
    p = load(Path(__file__).resolve().parents[2] / "examples" / "lab-over-ssh.yaml")
    assert (p.source.ssh_mode, p.source.bwlimit, p.destination.ssh_mode) == ("auto", 50_000_000, "relay")


def test_one_schema_change_hosts_sync_and_cutover() -> None:
    p = validate({**BASE, "change_id": "CHG-12345", "hosts": "lab",
                  "sync": {"max_cycles": 3, "target_interval": "2s"},
                  "cutover": {"shutdown_timeout": "1m", "allow_hard_poweroff": True,
                              "certify": "full", "max_sync_age": "5m", "probes": [22, 443],
                              "probe_command": "true", "probe_host": "10.0.0.9",
                              "ready_timeout": "2m", "network_map": {"VM Network": "prod"}}})
    assert (p.change_id, p.hosts, p.host_kind) == ("CHG-12345", "lab", "lab")
    assert (p.sync.max_cycles, p.sync.target_interval) == (3, 2.0)
    c = p.cutover
    assert (c.shutdown_timeout, c.allow_hard_poweroff, c.certify, c.max_sync_age) == (
        60.0, True, "full", 300.0)
    assert (c.probes, c.probe_command, c.probe_host, c.ready_timeout) == (
        (22, 443), "true", "10.0.0.9", 120.0)
    assert c.network_map == {"VM Network": "prod"}
    assert p.to_dict()["cutover"]["probes"] == [22, 443]


def test_cutover_defaults_are_the_engines() -> None:
    """Nothing in the file: CutoverOptions.from_params gives CutoverOptions' defaults."""
    from vmigrate_lib.engine.cutover_steps import CutoverOptions

    p = validate(BASE)
    assert (p.change_id, p.hosts, p.host_kind, p.sync.max_cycles) == ("", "", "lab", 10)
    assert CutoverOptions.from_params(p.cutover) == CutoverOptions()


def test_cutover_overrides_on_top_of_the_file() -> None:
    from vmigrate_lib.engine.cutover_steps import CutoverOptions

    c = validate({**BASE, "cutover": {"shutdown_timeout": "1m", "allow_hard_poweroff": True,
                                      "probes": [22], "network_map": {"a": "b"}}}).cutover
    o = CutoverOptions.from_params(c, shutdown_timeout=None, allow_hard_poweroff=False,
                                   probes=[80], network_map={"c": "d"}, force=True, budget=9.0)
    assert (o.shutdown_timeout, o.allow_hard_poweroff, o.probes, o.force, o.budget) == (
        60.0, False, (80,), True, 9.0)  # None keeps the file's value; others replace it
    assert o.network_map == {"a": "b", "c": "d"}  # merged entry by entry
    with pytest.raises(TypeError, match="unknown cutover option"):
        CutoverOptions.from_params(c, colour="red")


@pytest.mark.parametrize(
    "change, words",
    [
        ({"force": True}, "parameter force does not belong in a params file"),
        ({"cutover": {"force": True}}, "cutover.force does not belong in a params file"),
        ({"cutover": {"colour": 1}}, "unknown parameter cutover.colour"),
        ({"cutover": {"certify": "some"}}, "cutover.certify: must be one of"),
        ({"cutover": {"probes": [0]}}, "cutover.probes: must be a list of TCP ports"),
        ({"cutover": {"probes": ["ssh"]}}, "cutover.probes: must be a list of TCP ports"),
        ({"cutover": {"network_map": ["x"]}}, "cutover.network_map: must map"),
        ({"cutover": {"ready_timeout": "soon"}}, "cutover.ready_timeout: not a duration"),
        ({"cutover": {"allow_hard_poweroff": "yes"}}, "true or false"),
        ({"cutover": {"password": "hunter2"}}, "holds a secret"),
        ({"cutover": "fast"}, "parameter cutover must be a mapping"),
        ({"sync": {"max_cycles": 0}}, "sync.max_cycles: must be from 1 to 1000"),
        ({"sync": {"max_cycles": True}}, "sync.max_cycles: must be an integer"),
        ({"change_id": "x"}, "not a change reference"),
        ({"hosts": "prod"}, "hosts must be lab or real"),
        ({"hosts": "real"}, "source.type is 'lab' but hosts is 'real'"),
    ],
)
def test_bad_schema_parameters_are_named(change: dict, words: str) -> None:
    with pytest.raises(ParameterError) as exc:
        validate({**BASE, **change})
    assert words in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_hosts_real_with_vsphere_hosts() -> None:
    real = {"type": "vsphere", "host": "esx-a", "url": "https://vc", "user": "u",
            "password_env": "VC_PASS"}
    p = validate({**BASE, "hosts": "real", "source": real,
                  "destination": {**real, "host": "esx-b"}})
    assert p.host_kind == "real"
    with pytest.raises(ParameterError, match=r"destination\.type is 'lab' but hosts is 'real'"):
        validate({**BASE, "hosts": "real", "source": real})


def test_example_params_file_is_valid() -> None:
    p = load(Path(__file__).resolve().parents[2] / "examples" / "lab.yaml")
    assert (p.change_id, p.hosts, p.sync.max_cycles, p.cutover.certify) == (
        "CHG-LAB-0001", "lab", 10, "changed")


def test_transfer_mode_belongs_to_the_source() -> None:
    with pytest.raises(ParameterError, match=r"source\.ssh_mode"):
        validate({**BASE, "destination": {"host": "esx-b", "ssh_mode": "direct"}})


def test_ssh_password_references_are_separate_from_the_api_password() -> None:
    p = validate({**BASE, "source": {"type": "vsphere", "host": "esx-a", "url": "https://vc",
                                     "password_env": "VC_PW", "ssh_password_env": "ESX_SSH_PW"}})
    assert isinstance(p.source, VsphereHostParams)
    assert (p.source.password_env, p.source.ssh_password_env) == ("VC_PW", "ESX_SSH_PW")
    assert p.source.datastore_root == "/vmfs/volumes"


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml")
                   if not p.name.startswith("wave"))  # wave files: tests/wave/test_wave_file.py
)
def test_every_example_validates(name: str) -> None:
    """The examples are documentation: each must load under the strict schema."""
    p = load(Path(__file__).resolve().parents[2] / "examples" / name)
    assert p.vm and p.source.host and p.destination.host
