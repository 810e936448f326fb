"""Build a Host from parameters: the one place that knows every implementation.

Implementations are imported lazily so that the lab needs neither pyVmomi nor
paramiko, and a missing optional dependency is a clear error, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ParameterError
from ..params import HostParams
from .host import Host


def open_host(hp: HostParams) -> Host:
    """Connect to the host named in ``hp`` (raises HostNotFound, AuthenticationError...)."""
    if hp.type == "lab":
        from .lab import LabHost

        ssh = None
        if hp.url.startswith("ssh://"):  # the lab host's datastores through its sshd
            from ..dataplane.sshconfig import SshSettings

            ssh = SshSettings.from_host_params(hp)
        return LabHost(Path(hp.lab_root), hp.host, datastore_ssh=ssh)
    if hp.type == "vsphere":
        try:
            from .vsphere import VsphereHost  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ParameterError(
                "host type 'vsphere' is not available in this build",
                hint="use type: lab, or install a vmigrate with the vSphere control plane",
                parameter="type",
            ) from exc
        host: Host = VsphereHost(hp, datastore_root=hp.datastore_root)
        return host
    raise ParameterError(f"unknown host type {hp.type!r}", parameter="type")
