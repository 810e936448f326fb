"""The vSphere simulator peer behaves like the ESXi/vCenter parts vmigrate uses.

These tests pin down the peer (and its QueryChangedDiskAreas extension)
through pyvmomi, so the pyvmomi adapter's tests can rely on it.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl
from pyVmomi.SoapAdapter import SoapStubAdapter

from tests.peers import vcsim as vcsim_peer

KiB = 1024


@pytest.fixture
def si(vcsim: vcsim_peer.VcsimInfo) -> Iterator[Any]:
    # Test peer with Go's test certificate: no verification, tests only.
    conn = SmartConnect(
        host=vcsim.host,
        port=vcsim.port,
        user=vcsim.user,
        pwd=vcsim.password,
        disableSslCertValidation=True,
    )
    yield conn
    Disconnect(conn)


def all_vms(si: Any) -> list[Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def disks_of(config: Any) -> list[Any]:
    return [d for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def disk_bytes(disk: Any) -> int:
    # The simulator leaves capacityInBytes unset; ESXi sets it.
    return int(disk.capacityInBytes or disk.capacityInKB * KiB)


def cbt_snapshot(vm: Any, name: str = "vmigrate-test") -> Any:
    WaitForTask(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    task = vm.CreateSnapshot_Task(name=name, description="", memory=False, quiesce=False)
    WaitForTask(task)
    return task.info.result


def query_all(vm: Any, snap: Any, disk: Any, change_id: str) -> tuple[list[tuple[int, int]], int]:
    """Page QueryChangedDiskAreas by startOffset to the disk's end, as on ESXi."""
    extents: list[tuple[int, int]] = []
    offset, pages, end = 0, 0, disk_bytes(disk)
    while offset < end:
        info = vm.QueryChangedDiskAreas(snap, disk.key, offset, change_id)
        assert info.startOffset == offset and info.length > 0
        extents += [(a.start, a.length) for a in info.changedArea]
        offset = info.startOffset + info.length
        pages += 1
    return extents, pages


@pytest.mark.parametrize(
    "vcsim, api_type", [("esx", "HostAgent"), ("vpx", "VirtualCenter")], indirect=["vcsim"]
)
def test_connect_and_list_vms(vcsim: vcsim_peer.VcsimInfo, si: Any, api_type: str) -> None:
    assert vcsim.url == f"https://127.0.0.1:{vcsim.port}/sdk"
    assert si.content.about.apiType == api_type
    vms = all_vms(si)
    assert len(vms) >= 2
    assert all(vm.runtime.powerState == "poweredOn" for vm in vms)


def test_read_disks(si: Any) -> None:
    vm = all_vms(si)[0]
    disks = disks_of(vm.config)
    assert disks
    for disk in disks:
        assert disk.backing.fileName.startswith("[") and disk.backing.fileName.endswith(".vmdk")
        assert disk.capacityInKB > 0
        assert disk_bytes(disk) == disk.capacityInKB * KiB


def test_wrong_credentials_give_invalid_login(vcsim: vcsim_peer.VcsimInfo) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(
            host=vcsim.host,
            port=vcsim.port,
            user=vcsim.user,
            pwd="wrong",
            disableSslCertValidation=True,
        )


def test_cbt_snapshot_lifecycle(si: Any, qcda_source: Any) -> None:
    qcda_source.write(changeId="52 aa bb/7", extents={})
    vm = all_vms(si)[0]
    assert not vm.snapshot  # None: unset property (the peer fixes a simulator crash here)
    assert not vm.config.changeTrackingEnabled

    snap = cbt_snapshot(vm)
    assert vm.config.changeTrackingEnabled
    assert vm.snapshot.currentSnapshot == snap
    # The snapshot's disks carry the change id the source of truth gave.
    assert [d.backing.changeId for d in disks_of(snap.config)] == ["52 aa bb/7"] * len(
        disks_of(snap.config)
    )
    assert all(not d.backing.changeId for d in disks_of(vm.config))

    task = snap.RevertToSnapshot_Task()
    WaitForTask(task)
    assert task.info.entity == vm

    task = snap.RemoveSnapshot_Task(removeChildren=False)
    WaitForTask(task)  # works: the peer reports the VM as task.info.entity
    assert task.info.entity == vm
    assert vm.snapshot is None


def test_snapshot_change_id_generated_without_source(si: Any, qcda_source: Any) -> None:
    vm = all_vms(si)[0]
    first = disks_of(cbt_snapshot(vm, "a").config)[0].backing.changeId
    second = disks_of(cbt_snapshot(vm, "b").config)[0].backing.changeId
    assert first == f"{vm.config.uuid}/1" and second == f"{vm.config.uuid}/2"


def test_query_changed_disk_areas_pages_by_start_offset(si: Any, qcda_source: Any) -> None:
    vm = all_vms(si)[0]
    snap = cbt_snapshot(vm)
    disk = disks_of(snap.config)[0]
    size = disk_bytes(disk)
    page = 256 * KiB
    assert size >= 3 * page  # 1 MiB in the simulator's default VMs
    allocated = [(0, 64 * KiB), (page - 64 * KiB, 128 * KiB), (size - 64 * KiB, 64 * KiB)]
    changed = [(2 * page, 64 * KiB)]
    qcda_source.write(pageLength=page, extents={"*": allocated, "cid-1": changed})

    extents, pages = query_all(vm, snap, disk, "*")
    assert pages == -(-size // page)
    # The extent across the first page boundary comes back split at it.
    assert extents == [
        (0, 64 * KiB),
        (page - 64 * KiB, 64 * KiB),
        (page, 64 * KiB),
        (size - 64 * KiB, 64 * KiB),
    ]
    assert query_all(vm, snap, disk, "cid-1")[0] == changed

    req = qcda_source.requests()[-1]
    assert req["op"] == "query"
    assert (req["vm"], req["vmMoref"], req["snapshot"]) == (vm.name, vm._moId, snap._moId)
    assert (req["deviceKey"], req["changeId"], req["capacity"]) == (disk.key, "cid-1", size)
    assert req["fileName"] == disk.backing.fileName


@pytest.mark.parametrize(
    "fault_name, fault",
    [("InvalidArgument", vmodl.fault.InvalidArgument), ("FileFault", vim.fault.FileFault)],
)
def test_invalid_change_id_gives_fault(
    si: Any, qcda_source: Any, fault_name: str, fault: type[Exception]
) -> None:
    qcda_source.write(invalidChangeIdFault=fault_name, extents={"*": []})
    vm = all_vms(si)[0]
    snap = cbt_snapshot(vm)
    disk = disks_of(snap.config)[0]
    with pytest.raises(fault) as err:
        vm.QueryChangedDiskAreas(snap, disk.key, 0, "52 00/999")
    value: Any = err.value  # a vmodl fault: msg, invalidProperty
    assert "invalid change id" in value.msg
    if fault_name == "InvalidArgument":
        assert value.invalidProperty == "changeId"


def test_query_checks_what_the_simulator_knows(si: Any, vcsim: Any) -> None:
    vm = all_vms(si)[0]
    disk = disks_of(vm.config)[0]
    with pytest.raises(vim.fault.FileFault):  # change tracking off
        vm.QueryChangedDiskAreas(None, disk.key, 0, "*")
    snap = cbt_snapshot(vm)
    with pytest.raises(vmodl.fault.InvalidArgument) as err:
        vm.QueryChangedDiskAreas(snap, 424242, 0, "*")
    assert err.value.invalidProperty == "deviceKey"
    with pytest.raises(vmodl.fault.InvalidArgument) as err:
        vm.QueryChangedDiskAreas(snap, disk.key, disk_bytes(disk), "*")
    assert err.value.invalidProperty == "startOffset"

    # Without a session: the simulator's own NotAuthenticated.
    stub = SoapStubAdapter(
        host=vcsim.host,
        port=vcsim.port,
        version="vim.version.version10",
        sslContext=ssl._create_unverified_context(),
    )
    with pytest.raises(vim.fault.NotAuthenticated):
        vim.VirtualMachine(vm._moId, stub).QueryChangedDiskAreas(snap, disk.key, 0, "*")


def test_build_script_reports_missing_govmomi() -> None:
    proc = subprocess.run(
        ["sh", str(vcsim_peer.BUILD_SCRIPT), "/nonexistent/vcsim"],
        check=False,
        env={"PATH": "/usr/bin:/bin", "VCSIM_GOPATH": "/nonexistent"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == vcsim_peer.UNAVAILABLE_RC
    assert "apt-get install golang" in proc.stderr
