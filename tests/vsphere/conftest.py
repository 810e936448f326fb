"""Fixtures for tests against the vSphere API simulator peer (tests/peers/vcsim)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control.factory import open_host
from vmigrate_lib.control.vsphere import VsphereHost


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


@pytest.fixture
def host(vcsim: vcsim_peer.VcsimInfo) -> Iterator[VsphereHost]:
    """The adapter on the test's simulator, as the CLI opens it (closed after)."""
    h = open_host(vsim.host_params(vcsim))
    assert isinstance(h, VsphereHost)
    yield h
    h.close()


@pytest.fixture
def si(vcsim: vcsim_peer.VcsimInfo) -> Iterator[Any]:
    """A pyVmomi session on the test's simulator: the test's own hands on it."""
    with vsim.pyvmomi(vcsim) as conn:
        yield conn


@pytest.fixture(scope="session")
def ssh_pair() -> Iterator[tuple[Any, Any, str]]:
    """(source SshHost, destination SshHost, kind): the two ESXi hosts' sshd.

    As root with ``ip netns``: sshd in namespaces a and b on a shaped bridge
    (kind "netns"), as tests/ssh's ``ssh_hosts``; otherwise one sshd on
    127.0.0.1 serving both (kind "loopback").  Namespaces share the file
    system, so a simulator's datastore folder is reachable from either sshd."""
    from tests.peers import netns as peers_netns
    from tests.peers import sshd as peers_sshd
    from tests.peers.hostpair import namespace_pair

    if not os.access(peers_sshd.SSHD, os.X_OK):
        pytest.skip(f"{peers_sshd.SSHD} not found (install openssh-server)")
    ok, _why = peers_netns.available()
    if not ok:
        with peers_sshd.start_sshd("vsphere-loopback") as srv:
            yield srv.host, srv.host, "loopback"
        return
    peers_sshd.cleanup_stale_dirs()
    wd = tempfile.mkdtemp(prefix=f"vmg-vsphere-{os.getpid()}-")
    os.chmod(wd, 0o755)
    try:
        with namespace_pair(wd, "1gbit", "1ms", prefix="vsphere-") as pair:
            yield pair.servers["a"].host, pair.servers["b"].host, "netns"
    finally:
        shutil.rmtree(wd, ignore_errors=True)
