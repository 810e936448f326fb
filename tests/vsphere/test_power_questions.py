"""Power-on questions (issue 11 item 6, real-esxi notes F10) against the simulator peer.

The peer (tests/peers/vcsim/questions.go) imitates what ESXi does with a VM registered
from a copied ``.vmx``: without ``uuid.action`` its first power-on stops at the "moved
or copied" question (``msg.uuid.altered``; VMware KB 1541) until ``AnswerVM``; a test can
make any power-on ask a question vmigrate does not understand
(``msg.hbacommon.outofspace``).  Texts and choice keys come from public sources cited in
tests/peers/README.md ("issue 11 item 6").  What only a real host shows: which other
questions ESXi 7/8 asks at power-on, the exact question id format, and the power state a
VM reports while it waits.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control import vmxtext
from vmigrate_lib.control.host import PowerState, VmInfo
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import PowerOnQuestion

DS = "LocalDS_0"
#: the source as register_vm sees it (no MACs to compare: Bob's .vmx has its own)
ALICE = VmInfo(name="alice", uuid="u", host="esx-a", power=PowerState.OFF, datastore=DS,
               folder="alice", disks=())


def peer_control(sim: vcsim_peer.VcsimInfo, **request: Any) -> None:
    """POST /vmigrate-questions: make the next power-on of a VM ask a question."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(f"https://{sim.host}:{sim.port}/vmigrate-questions",
                                 data=json.dumps(request).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        resp.read()


def ds_root(si: Any, name: str = DS) -> Path:
    ds = next(d for d in vsim.objects(si, vim.Datastore) if d.name == name)
    return Path(str(ds.info.url))


def bob_files(si: Any, vmx: str, folder: str = "bob") -> None:
    """Bob's folder as the cutover leaves it: his .vmx, .nvram (and the log the
    simulator opens when it registers a VM)."""
    d = ds_root(si) / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / "bob.vmx").write_text(vmx)
    (d / "bob.nvram").write_bytes(b"NVRAM")
    (d / "vmware.log").write_text("")


def copied_vmx() -> str:
    """Alice's .vmx as ESXi wrote it (uuid.location, no uuid.action), renamed for Bob."""
    return vsim.esxi_vmx("alice").replace("alice", "bob")


def identity(si: Any, name: str) -> tuple[str, list[str]]:
    vm = vsim.vm(si, name)
    macs = [str(d.macAddress) for d in vm.config.hardware.device
            if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    return str(vm.config.uuid), macs


def test_peer_asks_moved_or_copied_until_answered(host: VsphereHost, si: Any) -> None:
    """The peer itself, driven by pyVmomi only: a VM registered from a copied .vmx
    stops at msg.uuid.altered with KB 1541's three choices; "I Copied It" gives it a new
    UUID and new MACs (what vmigrate must never answer for Bob)."""
    bob_files(si, copied_vmx())
    host.register_vm("bob", DS, "bob", ALICE)
    before = identity(si, "bob")
    vm = vsim.vm(si, "bob")
    task = vm.PowerOnVM_Task()
    vsim.wait_for(lambda: vm.runtime.question is not None)
    q = vm.runtime.question
    assert q.message[0].id == "msg.uuid.altered" and "moved or copied" in q.text
    assert [(c.key, c.label) for c in q.choice.choiceInfo] == [
        ("0", "button.uuid.cancel"), ("1", "button.uuid.movedTheVM"), ("2", "button.uuid.copiedTheVM")]
    assert task.info.state in ("queued", "running")
    vm.AnswerVM(questionId=q.id, answerChoice="2")
    WaitForTask(task)
    assert vm.runtime.question is None and vm.runtime.powerState == "poweredOn"
    after = identity(si, "bob")
    assert after[0] != before[0] and after[1] != before[1]


def test_moved_or_copied_is_answered_moved_and_journaled(host: VsphereHost, si: Any) -> None:
    """vmigrate answers the "moved or copied" question "I moved it" (the same as the
    uuid.action = keep it writes), so Bob keeps Alice's UUID and MACs, and says so in a
    note for the journal.  Before: power_on waited on the task until its timeout (here
    TimeoutExpired after 20 s) with the question never read."""
    bob_files(si, copied_vmx())
    host.register_vm("bob", DS, "bob", ALICE)
    before = identity(si, "bob")
    host.power_on("bob", timeout=20)
    assert host.power_state("bob") == PowerState.ON
    assert identity(si, "bob") == before
    notes = host.take_notes()
    assert len(notes) == 1 and "msg.uuid.altered" in notes[0]
    assert "moved or copied" in notes[0] and "answered button.uuid.movedTheVM (I Moved It)" in notes[0]
    assert host.take_notes() == []


def test_bobs_rewritten_vmx_asks_nothing(host: VsphereHost, si: Any) -> None:
    """Bob's .vmx as vmxtext writes it carries uuid.action = keep: the peer, like ESXi
    (KB 1541: "you are not prompted"), asks no question, and there is nothing to note."""
    files = {"alice.vmx": vsim.esxi_vmx("alice").encode(),
             "alice.vmdk": vsim.esxi_descriptor("alice-flat.vmdk", 1 << 20).encode()}
    out = vmxtext.prepare("bob", ALICE, files, {"alice.vmdk": "bob.vmdk"}, dest_volumes=[DS])
    bob_files(si, out["bob.vmx"].decode())
    host.register_vm("bob", DS, "bob", ALICE)
    host.power_on("bob", timeout=20)
    assert host.power_state("bob") == PowerState.ON
    assert host.take_notes() == []


def test_unknown_question_fails_fast_with_its_text(
        host: VsphereHost, si: Any, vcsim: vcsim_peer.VcsimInfo) -> None:
    """A question vmigrate does not understand is not answered on its own merits: the
    power-on fails at once with the question's text and choices, after choosing Cancel
    so Bob cannot start later behind a rollback.  Before: TimeoutExpired after the
    whole timeout, the question still pending."""
    bob_files(si, copied_vmx().replace('uuid.bios', 'uuid.action = "keep"\nuuid.bios', 1))
    host.register_vm("bob", DS, "bob", ALICE)
    peer_control(vcsim, op="question", vm="bob", id="msg.hbacommon.outofspace")
    with pytest.raises(PowerOnQuestion) as err:  # not TimeoutExpired: it did not wait
        host.power_on("bob", timeout=300)
    msg = err.value.one_line()
    assert "VM bob stopped at a question while powering on" in msg
    assert "There is no more space for virtual disk 'bob.vmdk'" in msg
    assert "0 button.retry (Retry), 1 button.cancel (Cancel)" in msg
    assert "vmigrate answered button.cancel, so it did not start" in msg
    assert err.value.fields["question"]["messages"] == ["msg.hbacommon.outofspace"]
    vm = vsim.vm(si, "bob")
    vsim.wait_for(lambda: vm.runtime.question is None)
    assert host.power_state("bob") == PowerState.OFF
