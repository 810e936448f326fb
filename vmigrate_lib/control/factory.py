"""Build a Host from parameters: the one place that knows every implementation."""

from __future__ import annotations

from pathlib import Path

from ..dataplane.sshconfig import SshSettings
from ..errors import ParameterError
from ..params import HostParams
from .host import Host
from .lab import LabHost
from .vsphere import VsphereHost


def open_host(hp: HostParams) -> Host:
    """Connect to the host named in ``hp`` (raises HostNotFound, AuthenticationError...)."""
    if hp.type == "lab":
        ssh = None
        if hp.url.startswith("ssh://"):  # the lab host's datastores through its sshd
            ssh = SshSettings.from_host_params(hp)
        return LabHost(Path(hp.lab_root), hp.host, datastore_ssh=ssh)
    if hp.type == "vsphere":
        return VsphereHost(hp, datastore_root=hp.datastore_root, call_timeout=hp.api_timeout,
                           snapshot_remove_timeout=hp.snapshot_remove_timeout,
                           allow_consolidate=hp.allow_consolidate)
    raise ParameterError(f"unknown host type {hp.type!r}", parameter="type")
