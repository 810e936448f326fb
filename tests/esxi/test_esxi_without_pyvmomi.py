"""The esxi control plane never loads pyVmomi, the cutover's .vmx rewrite included.

An ``esxi`` host is driven over SSH alone (vim-cmd, vmkfstools): a machine without pyVmomi
must be able to run it.  Before, its ``prepare_config_files`` imported
``control/vsphere/vmxfiles.py`` (pure text) through the ``vsphere`` package, whose
``__init__`` loads pyVmomi and pyVim: the cutover of an ESXi VM loaded the whole vSphere
SDK.  The rewrite now lives in the neutral ``control/vmxtext.py`` (with ``dspaths`` and
``vmxpaths``), shared by both hosts.

Checked on what a fresh interpreter really loads (``sys.modules``), with a real ``.vmx``
and descriptor rewritten through ``EsxiHost.prepare_config_files``; the host's SSH side
(``ls /vmfs/volumes``) is stood in for by a fixed list of volumes.  The rewritten text is
checked in tests/esxi/test_esxi_config_rewrite.py against the ESXi peer; what a real ESXi
makes of the files only a real host shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What an esxi-only run must not load: the vSphere SDK and the package that wraps it.
FORBIDDEN = ("pyVmomi", "pyVim", "vmigrate_lib.control.vsphere")

PROBE = r'''
import json, sys
from types import SimpleNamespace
from vmigrate_lib.control.esxi import EsxiHost
from vmigrate_lib.control.host import DiskInfo, PowerState, VmInfo

alice = VmInfo(name="alice", uuid="u", host="esx-a", power=PowerState.OFF, datastore="ds1",
               folder="alice", disks=(DiskInfo(key=2000, label="Hard disk 1", datastore="ds1",
                                               path="alice/alice-flat.vmdk", capacity=1 << 23),))
files = {"alice.vmx": b'.encoding = "UTF-8"\ndisplayName = "alice"\n'
                      b'scsi0:0.fileName = "alice.vmdk"\n',
         "alice.vmdk": b'# Disk DescriptorFile\nversion=1\ncreateType="vmfs"\n\n'
                       b'RW 16384 VMFS "alice-flat.vmdk"\n'}
# the host's own state prepare_config_files reads: /vmfs/volumes' names and its notes
host = SimpleNamespace(_volumes=lambda: ["ds1"], _notes=[])
out = EsxiHost.prepare_config_files(host, "bob", alice, files, {
    "alice.vmx": "bob.vmx", "alice.vmdk": "bob.vmdk", "alice-flat.vmdk": "bob-flat.vmdk"})
forbidden = json.loads(sys.argv[1])
print(json.dumps({"files": {k: v.decode() for k, v in out.items()}, "loaded": sorted(
    m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))}))
'''


def test_esxi_cutover_rewrite_loads_no_pyvmomi() -> None:
    """Importing the esxi host and rewriting Bob's .vmx and descriptor loads none of
    pyVmomi, pyVim or ``vmigrate_lib.control.vsphere``; the rewrite did happen (Bob's
    name and files).  Before the move: pyVim, pyVmomi and the vsphere package loaded."""
    run = subprocess.run([sys.executable, "-c", PROBE, json.dumps(FORBIDDEN)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    seen = json.loads(run.stdout)
    assert seen["loaded"] == [], f"the esxi cutover loads {seen['loaded']}"
    vmx = seen["files"]["bob.vmx"]
    assert 'displayName = "bob"' in vmx and 'scsi0:0.fileName = "bob.vmdk"' in vmx
    assert '"bob-flat.vmdk"' in seen["files"]["bob.vmdk"]
