"""Preflight asks the host implementation for its own preconditions (Host.migration_checks)."""

from __future__ import annotations

from vmigrate_lib.control.host import HostCheck, VmInfo
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.engine.preflight import run_preflight
from vmigrate_lib.errors import DiskMismatch
from vmigrate_lib.session import close_migration, open_migration


class _PickyLab(LabHost):
    """The real lab, with one host-specific precondition that fails (as vSphere's
    disk-placement check does for a disk outside the VM's folder)."""

    def migration_checks(self, vm: VmInfo) -> list[HostCheck]:
        return [HostCheck("disk placement", False, "outside the VM's folder: Hard disk 2",
                          DiskMismatch(f"disks of VM {vm.name} are outside its folder"))]


def test_a_failing_host_check_stops_preflight_and_is_listed(make_lab) -> None:
    lab = make_lab(power_on=False)
    m = open_migration(lab.params())
    try:
        assert [c.name for c in LabHost(lab.root, "esx-a").migration_checks(m.vm())] == []
        m.source = _PickyLab(lab.root, "esx-a")
        report = run_preflight(m, raise_on_failure=False)
        failed = [c for c in report.checks if not c.ok]
        assert [c.name for c in failed] == ["disk placement"]
        assert isinstance(report.first_error(), DiskMismatch)
        assert not m.workspace.exists  # nothing was written
    finally:
        close_migration(m)
