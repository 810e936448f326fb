"""A vSphere host whose licence refuses writes says so at preflight, naming ``esxi``.

Proves it against the Go vSphere simulator (tests/peers/vcsim), whose ``-restrict-file``
refuses the listed methods with ``RestrictedVersion`` as the free ESXi licence does
(the fault and its message: pyvmomi#625, ansible#21121, os-autoinst#875; see
tests/peers/README.md): the source's migration checks start with a ``licence`` line
that fails, with the host's own message and a hint naming the ``esxi`` host type, and
the VM is unchanged; with the licence allowing writes the line passes.  The licence is
read, not probed: the peer's ``-licence-edition free`` reports edition ``esxBasic`` as a
free host does (lamw/vmware-scripts ``perl/checkESXiVersion.pl``), ``eval-expired`` an
evaluation with ``expirationHours`` 0; a licensed host's line passes with no task
recorded.  Where no licence is readable an empty ``ReconfigVM_Task`` is the fallback
probe.  That real free hosts report ``esxBasic`` on ESXi 7/8 (the script dates from
4.x-5.x) is what only a real host shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control.host import HostCheck
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import LicenseRestricted
from vmigrate_lib.modes import HOST_TYPES

VM = "alice"


@contextmanager
def simulator(tmp_path: Path, edition: str | None = None
              ) -> Iterator[tuple[vcsim_peer.VcsimInfo, Path]]:
    try:
        binary = vcsim_peer.build_vcsim()
    except Exception as exc:
        pytest.skip(f"vcsim peer unavailable: {exc}")
    restrict = tmp_path / "restrict"
    restrict.write_text("")
    (tmp_path / "ds").mkdir()
    extra = ["-licence-edition", edition] if edition else []
    with vcsim_peer.run_vcsim(binary=binary, restrict_file=restrict, extra_args=extra) as sim:
        with vsim.pyvmomi(sim) as si:
            vsim.create_datastore(si, "ds", tmp_path / "ds")
            vsim.create_vm(si, VM, "ds", 1 << 20)
        yield sim, restrict


@pytest.fixture
def restricted(tmp_path: Path) -> Iterator[tuple[vcsim_peer.VcsimInfo, Path]]:
    with simulator(tmp_path) as got:
        yield got


def licence_line(sim: vcsim_peer.VcsimInfo) -> HostCheck:
    host = VsphereHost(vsim.host_params(sim), keepalive=None)
    try:
        return host.migration_checks(host.find_vm(VM))[0]
    finally:
        host.close()


def recent_tasks(sim: vcsim_peer.VcsimInfo) -> list[str]:
    with vsim.pyvmomi(sim) as si:
        return [t.info.descriptionId for t in si.content.taskManager.recentTask]


@pytest.mark.parametrize("edition,why", [("free", "a free licence"),
                                         ("eval-expired", "its evaluation has ended")])
def test_refusing_licence_is_read_at_preflight_with_nothing_written(
        tmp_path: Path, edition: str, why: str) -> None:
    with simulator(tmp_path, edition) as (sim, restrict):
        restrict.write_text("ReconfigVM_Task\nCreateSnapshot_Task\nPowerOnVM_Task\n")
        before = recent_tasks(sim)
        line = licence_line(sim)
        assert (line.name, line.ok) == ("licence", False)
        assert isinstance(line.error, LicenseRestricted) and why in line.error.message
        assert "type to esxi" in line.error.hint
        assert recent_tasks(sim) == before  # read, not probed: no task was started


def test_unreadable_licence_falls_back_to_a_probe_that_finds_the_refusal(tmp_path: Path) -> None:
    with simulator(tmp_path, "none") as (sim, restrict):
        probe_finds_refusal(sim, restrict)


def probe_finds_refusal(sim: vcsim_peer.VcsimInfo, restrict: Path) -> None:
    restrict.write_text("ReconfigVM_Task\nCreateSnapshot_Task\nPowerOnVM_Task\nRegisterVM_Task\n")
    with vsim.pyvmomi(sim) as si:
        before = vsim.vm(si, VM).config.changeVersion
    host = VsphereHost(vsim.host_params(sim), keepalive=None)
    try:
        vm = host.find_vm(VM)
        line = host.migration_checks(vm)[0]
    finally:
        host.close()
    assert (line.name, line.ok) == ("licence", False)
    err = line.error
    assert isinstance(err, LicenseRestricted)
    assert "Current license or ESXi version prohibits" in err.message
    assert "type to esxi" in err.hint and "esxi" in HOST_TYPES  # a host type that exists
    with vsim.pyvmomi(sim) as si:
        assert vsim.vm(si, VM).config.changeVersion == before  # nothing changed


def test_licensed_host_passes(restricted: tuple[vcsim_peer.VcsimInfo, Path]) -> None:
    sim, _ = restricted
    host = VsphereHost(vsim.host_params(sim), keepalive=None)
    try:
        line = host.migration_checks(host.find_vm(VM))[0]
    finally:
        host.close()
    assert (line.name, line.ok, line.error) == ("licence", True, None)
    assert "API writes allowed" in line.detail and "Evaluation Mode" in line.detail
    assert not [t for t in recent_tasks(sim) if "reconfigure" in t.lower()]
