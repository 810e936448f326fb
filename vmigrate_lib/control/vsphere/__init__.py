"""The vSphere control plane (vCenter or standalone ESXi) through pyVmomi.

The only package of vmigrate that imports pyVmomi; faults become
:mod:`vmigrate_lib.errors` at its boundary.  Modules: ``connection`` (session),
``inventory`` (VMs, disks, datastores), ``snapshots``, ``cbt``, ``power``,
``register``, ``tasks`` (timeouts, fault mapping), ``vm_checks`` (preflight lists),
``api_guard`` (a lost connection in any method); datastore paths and the .vmx rewrite are
:mod:`..dspaths` and :mod:`..vmxtext`, shared with the esxi host (no pyVmomi there).
"""

from __future__ import annotations

from .host import CBT_STUN_SNAPSHOT, TransportFactory, VsphereHost, open_ssh_datastore

__all__ = ["CBT_STUN_SNAPSHOT", "TransportFactory", "VsphereHost", "open_ssh_datastore"]
