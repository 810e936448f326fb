"""The Jupyter settings files vmigrate merges into are the operator's: a file that is not
what Jupyter reads (a JSON object; for the server, of objects per section) is refused with
one line naming it, never overwritten with a guess.  Real files in a tmp prefix; says
nothing about any ESXi/vCenter host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmigrate_lib.errors import InputError
from vmigrate_lib.faces.jupyter_setup import (
    merged_lab_settings,
    server_config_file,
    settings_file,
    write_server_config,
)


@pytest.mark.parametrize("text", ["[]", '{"ServerApp": 3}', "{not json"])
def test_server_config_not_an_object_of_objects_is_refused(tmp_path: Path, text: str) -> None:
    """A list, a section that is not an object, or no JSON at all: refused, file unchanged."""
    target = server_config_file(tmp_path)
    target.parent.mkdir(parents=True)
    target.write_text(text)
    with pytest.raises(InputError) as info:
        write_server_config(tmp_path)
    assert str(target) in info.value.one_line() and "fix or remove" in info.value.one_line()
    assert target.read_text() == text


def test_server_config_keeps_the_operators_settings(tmp_path: Path) -> None:
    """Other sections and keys stay; vmigrate's settings are merged in."""
    target = server_config_file(tmp_path)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"ServerApp": {"port": 9999}, "Other": {"x": 1}}))
    write_server_config(tmp_path)
    data = json.loads(target.read_text())
    assert data["ServerApp"]["port"] == 9999 and data["Other"] == {"x": 1}
    assert data["LabApp"] == {"expose_app_in_browser": True}


def test_lab_settings_not_an_object_are_refused(tmp_path: Path) -> None:
    target = settings_file(tmp_path)
    target.parent.mkdir(parents=True)
    target.write_text("[1, 2]")
    with pytest.raises(InputError, match="is not a JSON object"):
        merged_lab_settings(tmp_path)
    assert not server_config_file(tmp_path).exists()
