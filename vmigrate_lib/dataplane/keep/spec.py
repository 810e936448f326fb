"""What a keeper holds, from a migration's params, as plain data for its own process.

A keeper serves the datastore connections of ``lab`` hosts served over SSH and of
``vsphere`` hosts (their data plane is SSH; their API is not kept).  An ``esxi`` host's
control plane runs vim-cmd on its own SSH connection, which a keeper does not serve:
such a host is listed as not kept, and its commands connect as they always did.
No secret is in the spec: a password stays a reference (an environment variable the
keeper inherits, or a keyring entry), resolved by the keeper's login.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ...params import HostParams, MigrationParams
from ..sshconfig import DirectRoute, SshSettings
from .place import host_stem, settings_digest

DEFAULT_SPARES = 2  #: agents started ahead per datastore folder (a sync's two disks)


def host_spec(hp: HostParams) -> dict[str, Any] | None:
    """The keeper's entry for one host of a migration, or None when not kept."""
    if hp.type == "lab" and hp.url.startswith("ssh://"):
        from ...lab.layout import LabLayout

        layout = LabLayout(Path(hp.lab_root))
        prefix = str(layout.host_dir(hp.host) / "datastores")
        roots = [str(layout.datastore_dir(hp.host, d)) for d in layout.datastores(hp.host)]
    elif hp.type == "vsphere":
        prefix = hp.datastore_root.rstrip("/") or "/"
        roots = [f"{prefix}/{hp.datastore}"] if hp.datastore else []
    else:
        return None
    s = SshSettings.from_host_params(hp)
    return {"settings": dataclasses.asdict(s), "prefix": prefix, "roots": roots,
            "digest": settings_digest(s), "name": f"{host_stem(s)}.{settings_digest(s)}.sock"}


def keeper_spec(p: MigrationParams, seconds: float, idle: float,
                spares: int = DEFAULT_SPARES) -> tuple[dict[str, Any], list[str]]:
    """The spec of a keeper for ``p``'s hosts, and a line for each host it cannot keep."""
    hosts, skipped, seen = [], [], set()
    for side, hp in (("source", p.source), ("destination", p.destination)):
        entry = host_spec(hp)
        if entry is None:
            skipped.append(f"{side} {hp.host}: a {hp.type} host's commands connect directly "
                           "(a keeper serves lab-over-SSH and vsphere datastores)")
        elif entry["digest"] not in seen:
            seen.add(entry["digest"])
            hosts.append(entry)
    return {"hosts": hosts, "seconds": seconds, "idle": idle, "spares": spares}, skipped


def settings_from(d: dict[str, Any]) -> SshSettings:
    """:class:`SshSettings` back from :func:`dataclasses.asdict`'s dict."""
    d = dict(d)
    direct = dict(d.pop("direct"))
    direct["extra_options"] = tuple(direct.get("extra_options", ()))
    d["ciphers"] = tuple(d["ciphers"])
    return SshSettings(**d, direct=DirectRoute(**direct))
