"""The destination's licence is read at preflight too, not found at RegisterVM.

A free-licence vSphere destination refuses RegisterVM_Task and PowerOnVM_Task (the
free ESXi licence refuses every API write: pyvmomi#625, ansible#21121; peer and
sources in tests/peers/README.md); before, preflight passed and the cutover failed
at register with Alice already stopped.  Against the Go vSphere simulator's
``-licence-edition``: the destination checks start with a failing ``licence`` line
whose hint names the ``esxi`` host type; a licensed destination passes, nothing
written.  What only a real host shows: the edition key a real free ESXi 8 reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.esxi.test_licence_preflight import VM, recent_tasks, simulator
from tests.vsphere import vsim
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import LicenseRestricted


@pytest.mark.parametrize("edition,ok", [("free", False), (None, True)])
def test_destination_licence_line(tmp_path: Path, edition: str | None, ok: bool) -> None:
    with simulator(tmp_path, edition) as (sim, _restrict):
        before = recent_tasks(sim)
        host = VsphereHost(vsim.host_params(sim), keepalive=None)
        try:
            lines = host.destination_checks(host.find_vm(VM))
        finally:
            host.close()
        line = lines[0]
        assert (line.name, line.ok) == ("licence", ok), line
        if not ok:
            assert isinstance(line.error, LicenseRestricted)
            assert "a free licence" in line.error.message and "type to esxi" in line.error.hint
        assert recent_tasks(sim) == before  # read, nothing written
