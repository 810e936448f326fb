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
