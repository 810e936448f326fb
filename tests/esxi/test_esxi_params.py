"""``type: esxi`` in a params file: validated, built by the factory, refused when wrong.

Proves the schema accepts an ESXi host reached by SSH alone (examples/esxi.yaml, as
shipped), refuses an API URL on it and a zero command timeout (one line, exit 2,
nothing changed), and that ``open_host`` builds an :class:`EsxiHost` for it (a host
that is not there is bad input found at once).  Nothing here needs a real host.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vmigrate_lib.control.factory import open_host
from vmigrate_lib.errors import ParameterError, SshHostUnreachable
from vmigrate_lib.params import EsxiHostParams, load, validate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "esxi.yaml"


def raw(**source: object) -> dict[str, object]:
    return {"vm": "alice", "workspace": "ws",
            "source": {"type": "esxi", "host": "root@10.0.0.5", **source},
            "destination": {"type": "esxi", "host": "10.0.0.6", "datastore": "datastore1"}}


def test_the_example_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = load(EXAMPLE)
    assert isinstance(p.source, EsxiHostParams) and isinstance(p.destination, EsxiHostParams)
    assert (p.source.command_timeout, p.source.datastore_root) == (600.0, "/vmfs/volumes")
    assert p.host_kind == "real"


def test_an_api_url_or_a_vsphere_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="an esxi host has no API URL") as info:
        validate(raw(url="https://esx01/sdk"), tmp_path)
    assert info.value.exit_code == 2
    with pytest.raises(ParameterError, match="does not apply to a esxi host"):
        validate(raw(password_env="VC_PASSWORD"), tmp_path)
    with pytest.raises(ParameterError, match="command_timeout: must be more than 0"):
        validate(raw(command_timeout="0s"), tmp_path)
    assert validate(raw(url="ssh://root@10.0.0.5:2222"), tmp_path).source.url


def test_factory_opens_an_esxi_host(tmp_path: Path) -> None:
    """Port 9 on 127.0.0.1 answers nothing: the EsxiHost connects at once and says so."""
    p = validate(raw(url="ssh://root@127.0.0.1:9"), tmp_path)
    with pytest.raises(SshHostUnreachable, match=r"cannot reach SSH on 127\.0\.0\.1:9"):
        open_host(p.source)
    assert yaml.safe_load(EXAMPLE.read_text())["source"]["type"] == "esxi"
