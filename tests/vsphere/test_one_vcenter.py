"""One vCenter manages both hosts (issue 11 item 1): Bob's name, the source retired, the MACs.

Against the simulator's VPX model (tests/vsphere/vpxenv.py) with the project's
peer (tests/peers/vcsim/identity.go: per-host HostAutoStartManager, RegisterVM
reading the .vmx's NICs and regenerating a generated MAC another registered VM
has, ESXi's refusal of a static MAC outside the static range).  Sources in
tests/peers/README.md, section "issue 11 item 1".

What only a real vCenter/ESXi shows: whether vCenter regenerates a conflicting
generated MAC at registration or at the next power-on (the peer does it at
registration; either way the check after registration or the static MAC covers
it), the exact fault text of a refused static MAC, that Rename_Task also renames
nothing on the datastore (the folder stays ``alice/``), and what HA or a
scheduled task would do with a retired VM.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.vsphere import vsim
from tests.vsphere.vpxenv import (
    DST_HOST,
    NOTE,
    SRC_HOST,
    VpxEnv,
    autostart,
    nic_facts,
    vpx_env,
)
from vmigrate_lib.control import vmxtext
from vmigrate_lib.control.host import RetirePlan
from vmigrate_lib.control.vsphere import VsphereHost, checks, macs, retire
from vmigrate_lib.engine.cutover import CutoverHooks, CutoverOptions, run_cutover, run_rollback
from vmigrate_lib.engine.sync import run_cycles
from vmigrate_lib.errors import (
    CutoverError,
    HostApiError,
    HostNotPrepared,
    IdentityConflict,
    Interrupted,
    MacMismatch,
    ParameterError,
    VmigrateError,
)
from vmigrate_lib.session import close_migration

RETIRED = "alice-retired-CHG-12345"
OPTS = CutoverOptions(shutdown_timeout=30, ready_timeout=30, certify="full", shutdown_s=1.0,
                      boot_s=1.0, max_sync_age=3600, force=True)  # no dirty rate in 2 cycles


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path) -> Iterator[VpxEnv]:
    with vpx_env(tmp_path, vcsim_binary) as e:
        yield e


def test_example_passes_preflight_in_one_vcenter(env: VpxEnv) -> None:
    """examples/vsphere.yaml (one vCenter, no dest_name) passes preflight: with
    ``identity: retire-source`` Alice's own name is Bob's to take.  Before: preflight
    refused with "a VM named alice already exists on host DC0_C0_H0", the wrong host
    (Alice runs on DC0_H0) and no way out but a new name."""
    lines, err = env.preflight_lines()
    assert err is None, err
    assert lines["identity"].startswith(f"retire-source: at cutover alice is renamed {RETIRED}")
    assert "1 NIC(s)" in lines["identity"] and "leaves autostart" in lines["identity"]
    assert lines["destination name"].startswith("alice is free")


def test_new_name_in_one_vcenter_says_what_to_choose(env: VpxEnv) -> None:
    """identity new-name without dest_name: one line naming the vCenter, Alice's real
    host and both fixes (exit 2: an InputError); a new name passes."""
    lines, err = env.preflight_lines(**{"cutover.identity": "new-name"})
    assert isinstance(err, IdentityConflict)
    text = err.one_line()
    assert f"VM alice (on host {SRC_HOST}) keeps in the same inventory ({env.sim.url})" in text
    assert DST_HOST not in text
    assert "dest_name" in text and "retire-source" in text
    assert "already exists" not in lines.get("destination name", "")
    lines, err = env.preflight_lines(**{"cutover.identity": "new-name", "dest_name": "alice-b"})
    assert err is None, err
    assert "alice keeps her name" in lines["identity"] and "MAC" in lines["identity"]
    # the peer's Alice is in her host's autostart (powerOn): left as she is, a restart of
    # that host would start her beside Bob.  Before: nothing said it.
    assert (f"WARNING: alice is in host {SRC_HOST}'s autostart list" in lines["identity"]
            and "retire-source" in lines["identity"]), lines["identity"]


def test_name_taken_elsewhere_in_the_vcenter_names_its_host(env: VpxEnv) -> None:
    """Bob's name taken by another VM of the same vCenter: the line names the host that
    VM is on (before: the destination host, DC0_C0_H0, where it is not)."""
    _lines, err = env.preflight_lines(**{"cutover.identity": "new-name",
                                       "dest_name": "DC0_H0_VM0"})
    assert err is not None
    assert "a VM named DC0_H0_VM0 already exists on host DC0_H0" in err.one_line()


def test_retire_needs_the_rename_privilege(env: VpxEnv) -> None:
    """An API user who may not rename the source (VirtualMachine.Config.Rename, also the
    annotation's privilege) is refused at preflight, naming the privilege, instead of
    failing in the downtime window.  The peer answers FetchUserPrivilegeOnEntities with
    the list a test gives (realhost.go)."""
    held = [p for p, _ in (*checks.SOURCE_PRIVILEGES, *checks.DEST_PRIVILEGES,
                            *retire.VM_PRIVILEGES, *retire.HOST_PRIVILEGES)
            if p != "VirtualMachine.Config.Rename"]
    env.control("/vmigrate-realhost", op="privileges", user=env.sim.user, privileges=held)
    lines, err = env.preflight_lines()
    assert isinstance(err, HostNotPrepared), err
    assert "VirtualMachine.Config.Rename (renaming the source and noting why)" in err.one_line()
    assert lines["identity"].startswith("retire-source: the API user")


def test_retire_source_with_another_dest_name_is_refused(env: VpxEnv) -> None:
    with pytest.raises(ParameterError, match=r"dest_name: with cutover\.identity retire-source"):
        env.params(dest_name="bob")


def _sync(env: VpxEnv) -> None:
    m = env.migration()
    try:
        with m.workspace:
            recs = [o.record for o in run_cycles(m, 2)]
        assert recs[0]["certify"]["result"] == "identical"
    finally:
        close_migration(m)
    (env.root / "dstds" / "alice" / "vmware.log").touch()  # simulator: RegisterVM wants it


def _cutover(env: VpxEnv, source: type[VsphereHost] = VsphereHost,
             hooks: CutoverHooks | None = None) -> Any:
    m = env.migration(source=source)
    try:
        with vsim.GuestStarter(env.sim, "alice", after_power_off=True), m.workspace:
            return run_cutover(m, OPTS, hooks=hooks)
    finally:
        close_migration(m)


def _rollback(env: VpxEnv) -> Any:
    m = env.migration()
    try:
        with vsim.GuestStarter(env.sim, "alice", after_power_off=True), m.workspace:
            return run_rollback(m, confirm_data_loss=True)
    finally:
        close_migration(m)


def _assert_retired(si: Any, alice_mac: str) -> None:
    old, bob = vsim.vm(si, RETIRED), vsim.vm(si, "alice")
    assert old.runtime.host.name == SRC_HOST and old.runtime.powerState == "poweredOff"
    assert nic_facts(old) == [(alice_mac, "generated", False)]
    assert autostart(old) == []
    assert old.config.annotation.startswith(f"{NOTE}\nvmigrate: retired at the cutover of alice "
                                            "(change CHG-12345)")
    assert bob.runtime.host.name == DST_HOST and bob.runtime.powerState == "poweredOn"
    assert nic_facts(bob) == [(alice_mac, "manual", True)]  # her MAC, static


def _assert_restored(si: Any, alice_mac: str) -> None:
    alice = vsim.vm(si, "alice")
    assert alice.runtime.host.name == SRC_HOST and alice.runtime.powerState == "poweredOn"
    assert nic_facts(alice) == [(alice_mac, "generated", True)]
    assert autostart(alice) == [("alice", 1, "powerOn")]
    assert alice.config.annotation == NOTE
    assert [v.name for v in vsim.objects(si, vim.VirtualMachine)
            if v.name.startswith("alice")] == ["alice"]


def test_retire_source_cutover_then_rollback(env: VpxEnv) -> None:
    """The whole cutover in one vCenter: Alice renamed alice-retired-CHG-12345, her NIC
    not connecting at power-on, out of autostart, a note in her annotation; Bob
    registered as alice on the other host with her MAC, static.  A rollback puts back
    her name, NIC flag, autostart order and annotation, and powers her on.
    Before: no such step (preflight refused, see above)."""
    with vsim.pyvmomi(env.sim) as si:
        alice_mac = nic_facts(vsim.vm(si, "alice"))[0][0]
    _sync(env)
    res = _cutover(env)
    assert res.status == "done", res.record
    assert res.record.retire["state"] == "retired"
    with vsim.pyvmomi(env.sim) as si:
        _assert_retired(si, alice_mac)
    res = _rollback(env)
    assert res.status == "rolled_back"
    with vsim.pyvmomi(env.sim) as si:
        _assert_restored(si, alice_mac)


class StoppedMidRetire(VsphereHost):
    """Interrupted (Ctrl-C) after the rename, before the NICs and autostart change: the
    state a kill leaves too (the step recorded as not done, the plan saved)."""

    def retire_vm(self, plan: RetirePlan) -> None:
        vm = self.vm_ref(plan.name)
        WaitForTask(vm.Rename_Task(newName=plan.new_name))
        raise KeyboardInterrupt


class FailsMidRetire(VsphereHost):
    """The host refuses the second change of the retire (after the rename)."""

    def retire_vm(self, plan: RetirePlan) -> None:
        vm = self.vm_ref(plan.name)
        WaitForTask(vm.Rename_Task(newName=plan.new_name))
        raise HostApiError("ReconfigVM_Task refused (test)")


def test_stop_in_retire_step_resumes_and_rolls_back(env: VpxEnv) -> None:
    """A cutover stopped inside the retire step (Alice renamed, nothing else) resumes: the
    step runs again from the plan saved before anything changed, Bob comes up; a
    rollback then restores what the plan saw (NIC connecting, autostart), not what the
    killed run left."""
    with vsim.pyvmomi(env.sim) as si:
        alice_mac = nic_facts(vsim.vm(si, "alice"))[0][0]
    _sync(env)
    with pytest.raises(Interrupted):
        _cutover(env, source=StoppedMidRetire)
    with vsim.pyvmomi(env.sim) as si:
        half = vsim.vm(si, RETIRED)
        assert nic_facts(half)[0][2] is True and autostart(half)  # only the name changed
    res = _cutover(env)
    assert res.status == "done", res.record
    assert res.record.steps["retire_source"].runs == 2
    with vsim.pyvmomi(env.sim) as si:
        _assert_retired(si, alice_mac)
    assert _rollback(env).status == "rolled_back"
    with vsim.pyvmomi(env.sim) as si:
        _assert_restored(si, alice_mac)


def test_failure_in_retire_step_rolls_back(env: VpxEnv) -> None:
    """A retire step that fails half-way rolls back by itself: Alice's name, NIC flag,
    autostart and annotation as before, and she runs again."""
    with vsim.pyvmomi(env.sim) as si:
        alice_mac = nic_facts(vsim.vm(si, "alice"))[0][0]
    _sync(env)
    with pytest.raises(CutoverError, match="failed at step retire_source and was rolled back"):
        _cutover(env, source=FailsMidRetire)
    with vsim.pyvmomi(env.sim) as si:
        _assert_restored(si, alice_mac)


def test_kill_after_retire_step_resumes(env: VpxEnv) -> None:
    """Killed right after the retire step: the resume registers Bob under Alice's name
    and checks Alice (by her retired name) is off before powering him on."""
    _sync(env)

    def die(name: str) -> None:
        if name == "retire_source":
            raise SystemExit(137)

    with pytest.raises(SystemExit):
        _cutover(env, hooks=CutoverHooks(after_step=die))
    res = _cutover(env)
    assert res.status == "done" and res.record.steps["retire_source"].runs == 1


class MacsAsGenerated(VsphereHost):
    """A destination that writes Bob's .vmx without making the MACs static (as vmigrate
    did before): vCenter then regenerates the conflicting MAC."""

    def prepare_config_files(self, name: str, source: Any, files: Any, renames: Any) -> Any:
        return vmxtext.prepare(name, source, files, renames)


def test_mac_changed_at_registration_rolls_back_before_power_on(env: VpxEnv) -> None:
    """Bob registered with another MAC than Alice's: the register step fails with
    MacMismatch before any power-on, and the cutover rolls back by itself: Bob
    unregistered, Alice's name, NIC flag and autostart restored, Alice running.
    Before: Bob booted with a regenerated MAC (a new NIC for his guest, no IP)."""
    with vsim.pyvmomi(env.sim) as si:
        alice_mac = nic_facts(vsim.vm(si, "alice"))[0][0]
    _sync(env)
    m = env.migration(dest=MacsAsGenerated)
    try:
        with vsim.GuestStarter(env.sim, "alice", after_power_off=True), m.workspace, \
                pytest.raises(CutoverError, match="failed at step register and was rolled back"):
            run_cutover(m, OPTS)
        co = m.workspace.state.cutover
        assert co is not None and not co.bob_powered_on
        assert "MAC address" in str(co.reason)
    finally:
        close_migration(m)
    with vsim.pyvmomi(env.sim) as si:
        _assert_restored(si, alice_mac)


def _register_copy(env: VpxEnv, vmx: bytes) -> VsphereHost:
    """Alice's files as Bob's in [dstds] bob, registered on the destination host."""
    bob = env.root / "dstds" / "bob"
    bob.mkdir()
    (bob / "bob.vmx").write_bytes(vmx)
    (bob / "vmware.log").touch()  # simulator: RegisterVM opens it and the .nvram
    (bob / "bob.nvram").touch()
    return env.host(env.params().destination)


def test_regenerated_mac_is_caught_and_static_mac_kept(env: VpxEnv) -> None:
    """A copy registered with Alice's generated MAC while Alice is registered gets a new
    MAC (vCenter resolves the conflict): register_vm says so (MacMismatch) and leaves
    nothing registered.  Made static (macs.make_static, as the cutover writes Bob's
    .vmx), the MAC is kept, and with ``checkMACAddress = "FALSE"`` the static MAC
    outside 00:50:56:00-3F powers on; without it the peer refuses the power-on, as
    ESXi 5.1+ does."""
    src = env.host(env.params().source)
    alice = src.find_vm("alice")
    vmx = vmxtext.rewrite_vmx((env.root / "srcds" / "alice" / "alice.vmx").read_bytes(), "bob",
                               {})  # as the cutover writes it, but the MAC as it was
    host = _register_copy(env, vmx)
    with pytest.raises(MacMismatch, match=f"not alice's {alice.macs[0]}"):
        host.register_vm("bob", "dstds", "bob", alice)
    assert not host.vm_exists("bob")

    (env.root / "dstds" / "bob" / "bob.vmx").write_bytes(macs.make_static(vmx))
    bob = host.register_vm("bob", "dstds", "bob", alice)
    assert bob.macs == alice.macs
    host.power_on("bob")  # ethernet0.checkMACAddress = "FALSE": allowed
    host.power_off("bob")
    host.unregister_vm("bob")
    no_check = macs.make_static(vmx).replace(b'ethernet0.checkMACAddress = "FALSE"\n', b"")
    (env.root / "dstds" / "bob" / "bob.vmx").write_bytes(no_check)
    host.register_vm("bob", "dstds", "bob", alice)
    with pytest.raises(VmigrateError, match="is not an allowed static Ethernet address"):
        host.power_on("bob")


def test_make_static() -> None:
    """Every present NIC with a MAC becomes static with it (generated, vpx or already
    static), the generated keys go, CRLF stays CRLF, a MAC in the static range needs
    no checkMACAddress."""
    vmx = (b'ethernet0.present = "TRUE"\r\nethernet0.addressType = "vpx"\r\n'
           b'ethernet0.generatedAddress = "00:50:56:8a:01:02"\r\n'
           b'ethernet0.generatedAddressOffset = "0"\r\nethernet1.present = "TRUE"\r\n'
           b'ethernet1.addressType = "static"\r\nethernet1.address = "00:50:56:01:02:03"\r\n'
           b'ethernet2.present = "FALSE"\r\nethernet2.generatedAddress = "00:0c:29:00:00:09"\r\n')
    out = macs.make_static(vmx).decode()
    assert "\r\n" in out and "generatedAddress" not in out.replace("ethernet2.generated", "")
    assert 'ethernet0.addressType = "static"' in out
    assert 'ethernet0.address = "00:50:56:8a:01:02"' in out
    assert 'ethernet0.checkMACAddress = "FALSE"' in out
    assert 'ethernet1.address = "00:50:56:01:02:03"' in out
    assert "ethernet1.checkMACAddress" not in out
    assert 'ethernet2.generatedAddress = "00:0c:29:00:00:09"' in out  # not present: as it was
    assert macs.vmx_macs(out) == {"ethernet0": "00:50:56:8a:01:02",
                                  "ethernet1": "00:50:56:01:02:03"}
