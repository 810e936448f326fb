"""An ``esxi`` destination rewrites Bob's .vmx and disk descriptors as vSphere does.

Before, the esxi host type copied Alice's .vmx and descriptors verbatim under Bob's
names, so ``solo/registervm`` of ``bob.vmx`` would register a VM whose disk is still
``alice.vmdk`` (Alice's disk, on the source's datastore path) and whose display name
is Alice's.  Here, through the real peer (sshd, busybox, ``ls /vmfs/volumes`` for
the volumes the host mounts): Bob's .vmx names his descriptor, his name, change
tracking off, ``uuid.action = "keep"``; his descriptor names his flat file, no ctk.
The .vmx and descriptor are ESXi's (tests/vsphere/vsim.py, sources there).  What only
a real host shows: that registervm of the rewritten file raises no question.
"""

from __future__ import annotations

from tests.esxi.conftest import EsxiLab
from tests.vsphere.vsim import esxi_descriptor, esxi_vmx

MiB = 1 << 20


def test_bob_files_name_bob(esxi_lab: EsxiLab) -> None:
    host = esxi_lab.host()
    try:
        alice = host.find_vm("alice")
        files = {"alice.vmx": esxi_vmx("alice").encode(),
                 "alice.vmdk": esxi_descriptor("alice-flat.vmdk", 8 * MiB,
                                               ctk="alice-ctk.vmdk").encode(),
                 "alice.nvram": b"NVRAM"}
        renames = {"alice.vmx": "bob.vmx", "alice.vmdk": "bob.vmdk",
                   "alice-flat.vmdk": "bob-flat.vmdk", "alice.nvram": "bob.nvram"}
        out = host.prepare_config_files("bob", alice, files, renames)
    finally:
        host.close()
    assert set(out) == {"bob.vmx", "bob.vmdk", "bob.nvram"}
    vmx = out["bob.vmx"].decode()
    assert 'displayName = "bob"' in vmx and 'scsi0:0.fileName = "bob.vmdk"' in vmx
    assert 'nvram = "bob.nvram"' in vmx and 'uuid.action = "keep"' in vmx
    assert "alice" not in vmx.replace("alice.vmxf", "")  # the .vmxf was not copied
    desc = out["bob.vmdk"].decode()
    assert 'VMFS "bob-flat.vmdk"' in desc and "changeTrackPath" not in desc
