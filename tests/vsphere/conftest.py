"""Fixtures for tests against the vSphere API simulator peer (tests/peers/vcsim)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_PEERS = Path(__file__).resolve().parents[1] / "peers"
if str(_PEERS) not in sys.path:
    sys.path.insert(0, str(_PEERS))

import vcsim as vcsim_peer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.vsphere)


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    """The built simulator (skips the test when Go/govmomi are missing)."""
    return vcsim_peer.build_vcsim()


class QcdaSource:
    """The JSON file the -qcda-cmd reads: the test's source of truth for
    QueryChangedDiskAreas (format: tests/peers/qcda_json.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.write(extents={})

    def write(self, **data: Any) -> None:
        self.path.write_text(json.dumps(data))

    def requests(self) -> list[dict[str, Any]]:
        log = Path(str(self.path) + ".requests.jsonl")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    @property
    def command(self) -> str:
        return vcsim_peer.qcda_command(self.path)


@pytest.fixture
def qcda_source(tmp_path: Path) -> QcdaSource:
    return QcdaSource(tmp_path / "qcda.json")


@pytest.fixture
def vcsim(
    request: pytest.FixtureRequest, vcsim_binary: Path, qcda_source: QcdaSource
) -> Iterator[vcsim_peer.VcsimInfo]:
    """A fresh simulator per test: ESX model by default (parametrize
    indirectly with "vpx" for vCenter), TLS, fixed credentials, and
    QueryChangedDiskAreas answered from `qcda_source`."""
    model = getattr(request, "param", "esx")
    with vcsim_peer.run_vcsim(
        model=model, qcda_cmd=qcda_source.command, binary=vcsim_binary
    ) as info:
        yield info
