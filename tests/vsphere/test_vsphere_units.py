"""Pure parts of the vSphere control plane: paths, change ids, fault mapping."""

from __future__ import annotations

import re

import pytest
from pyVmomi import vim, vmodl

from vmigrate_lib.control.dspaths import (
    flat_path,
    is_delta,
    parse_ds_path,
    vmfs_flat_path,
)
from vmigrate_lib.control.vsphere.cbt import check_epoch, split_change_id
from vmigrate_lib.control.vsphere.tasks import LICENCE_MESSAGE, map_fault
from vmigrate_lib.errors import (
    ChangeIdInvalid,
    HostApiError,
    InsufficientSpace,
    LicenseRestricted,
    PermissionDenied,
    PowerError,
)
from vmigrate_lib.modes import HOST_TYPES


def test_paths() -> None:
    assert parse_ds_path("[datastore1] alice/alice.vmdk") == ("datastore1", "alice/alice.vmdk")
    assert parse_ds_path("[ds with space]  a/b.vmdk") == ("ds with space", "a/b.vmdk")
    assert flat_path("alice/alice.vmdk") == "alice/alice-flat.vmdk"
    assert flat_path("alice/alice-flat.vmdk") == "alice/alice-flat.vmdk"
    assert vmfs_flat_path("[datastore1] alice/alice_1.vmdk") == (
        "/vmfs/volumes/datastore1/alice/alice_1-flat.vmdk"
    )
    assert is_delta("alice/alice-000001.vmdk") and not is_delta("alice/alice.vmdk")
    with pytest.raises(HostApiError, match="not a datastore path"):
        parse_ds_path("alice/alice.vmdk")
    with pytest.raises(HostApiError, match="flat VMDK"):
        flat_path("alice/alice.iso")


def test_change_id_epochs() -> None:
    assert split_change_id("52 de c0 7c/4711") == ("52 de c0 7c", 4711)
    assert split_change_id("cid-1") is None
    check_epoch("52 aa/9", "*", "vm", 2000)
    check_epoch("52 aa/9", "52 aa/9", "vm", 2000)
    with pytest.raises(ChangeIdInvalid, match="another tracking epoch"):
        check_epoch("52 aa/9", "52 bb/2", "vm", 2000)
    with pytest.raises(ChangeIdInvalid, match="newer"):
        check_epoch("52 aa/9", "52 aa/10", "vm", 2000)
    with pytest.raises(ChangeIdInvalid, match="tracking was off"):
        check_epoch(None, "52 aa/1", "vm", 2000)


def test_free_licence_is_named_with_a_fix_that_exists() -> None:
    # Real free ESXi answers API writes with RestrictedVersion (not simulated).
    err = map_fault(vim.fault.RestrictedVersion(msg=LICENCE_MESSAGE + "."), "snapshot of alice")
    assert isinstance(err, LicenseRestricted)
    assert "licence" in err.message and "free ESXi" in err.message
    # The hint may only name host types the params schema accepts (it named 'esxi-shell').
    assert "license the host" in err.hint
    named = set(re.findall(r"host type ([\w-]+)", err.hint))
    assert named <= set(HOST_TYPES), named
    # The same sentence in another fault type is recognised too.
    err = map_fault(vmodl.fault.SystemError(msg=LICENCE_MESSAGE), "power on alice")
    assert isinstance(err, LicenseRestricted)


def test_other_faults() -> None:
    assert isinstance(map_fault(vim.fault.NoPermission(privilegeId="VirtualMachine.State.CreateSnapshot"),
                                "snapshot"), PermissionDenied)
    assert isinstance(map_fault(vim.fault.InvalidPowerState(existingState="poweredOff"), "x"),
                      PowerError)
    assert isinstance(map_fault(vim.fault.NoDiskSpace(datastore="ds1"), "x"), InsufficientSpace)
    err = map_fault(vim.fault.ToolsUnavailable(), "guest shutdown of alice")
    assert isinstance(err, PowerError) and "hard power-off" in err.hint
    err = map_fault(vmodl.fault.SystemError(msg="boom"), "x")
    assert type(err) is HostApiError and err.fields["fault"].endswith("SystemError")
