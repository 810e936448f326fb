"""A vSphere host whose licence refuses writes says so at preflight, naming ``esxi``.

Proves it against the Go vSphere simulator (tests/peers/vcsim), whose ``-restrict-file``
refuses the listed methods with ``RestrictedVersion`` as the free ESXi licence does
(the fault and its message: pyvmomi#625, ansible#21121, os-autoinst#875; see
tests/peers/README.md): the source's migration checks start with a ``licence`` line
that fails, with the host's own message and a hint naming the ``esxi`` host type, and
the VM is unchanged; with the licence allowing writes the line passes.  The probe is an
empty ``ReconfigVM_Task``; that a real free host refuses it before changing anything,
and that a licensed one changes no setting, is what only a real ESXi host shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import LicenseRestricted
from vmigrate_lib.modes import HOST_TYPES

VM = "alice"


@pytest.fixture
def restricted(tmp_path: Path) -> Iterator[tuple[vcsim_peer.VcsimInfo, Path]]:
    try:
        binary = vcsim_peer.build_vcsim()
    except Exception as exc:
        pytest.skip(f"vcsim peer unavailable: {exc}")
    restrict = tmp_path / "restrict"
    restrict.write_text("")
    (tmp_path / "ds").mkdir()
    with vcsim_peer.run_vcsim(binary=binary, restrict_file=restrict) as sim:
        with vsim.pyvmomi(sim) as si:
            vsim.create_datastore(si, "ds", tmp_path / "ds")
            vsim.create_vm(si, VM, "ds", 1 << 20)
        yield sim, restrict


def test_free_licence_is_found_at_preflight(restricted: tuple[vcsim_peer.VcsimInfo, Path]) -> None:
    sim, restrict = restricted
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
    assert "API writes allowed" in line.detail
