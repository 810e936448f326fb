"""Parameters: every face validates the same way, secrets are refused."""

from pathlib import Path

import pytest

from vmigrate_lib.errors import ParameterError
from vmigrate_lib.params import load, merge, validate
from vmigrate_lib.units import parse_duration, parse_size

BASE = {
    "vm": "alice",
    "source": {"type": "lab", "host": "esx-a"},
    "destination": {"type": "lab", "host": "esx-b"},
    "workspace": "ws",
}


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
        ({"ssh_compress": "lz4"}, "source.ssh_compress: must be one of"),
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
