"""VMware datastore paths and where their bytes live on an ESXi host.

A disk is named ``[ds] folder/disk.vmdk`` (the descriptor); its data sits in
``folder/disk-flat.vmdk``, which the SSH data plane reads under
``/vmfs/volumes/<ds>``.  Pure functions: no pyVmomi here.
"""

from __future__ import annotations

import posixpath
import re

from ..errors import HostApiError

VMFS_ROOT = "/vmfs/volumes"

_DS_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\]\s*(?P<path>.*)$")
_DELTA = re.compile(r"-\d{6}\.vmdk$")


def parse_ds_path(ds_path: str) -> tuple[str, str]:
    """``"[ds] folder/disk.vmdk"`` -> ``("ds", "folder/disk.vmdk")``."""
    m = _DS_PATH.match(ds_path.strip())
    if m is None or not m.group("ds").strip():
        raise HostApiError(
            f"not a datastore path: {ds_path!r}",
            hint="expected the form '[datastore] folder/file'",
            path=ds_path,
        )
    return m.group("ds").strip(), m.group("path").strip().lstrip("/")


def ds_path(datastore: str, path: str) -> str:
    """``("ds", "folder/disk.vmdk")`` -> ``"[ds] folder/disk.vmdk"``."""
    return f"[{datastore}] {path.lstrip('/')}"


def is_delta(path: str) -> bool:
    """Whether a descriptor names a snapshot delta (``disk-000001.vmdk``)."""
    return bool(_DELTA.search(path))


def flat_path(descriptor: str) -> str:
    """``folder/disk.vmdk`` -> ``folder/disk-flat.vmdk`` (already flat: unchanged)."""
    if descriptor.endswith("-flat.vmdk"):
        return descriptor
    if not descriptor.endswith(".vmdk"):
        raise HostApiError(
            f"not a virtual disk descriptor: {descriptor!r}",
            hint="vmigrate copies flat VMDK disks ('name.vmdk' + 'name-flat.vmdk')",
            path=descriptor,
        )
    return descriptor[: -len(".vmdk")] + "-flat.vmdk"


def datastore_root(datastore: str, base: str = VMFS_ROOT) -> str:
    """``ds`` -> ``/vmfs/volumes/ds``: what the data-plane agent serves.

    ``base`` is where the SSH host mounts its datastores by name; ESXi always
    uses ``/vmfs/volumes`` (a symlink per datastore name)."""
    if "/" in datastore or datastore in ("", ".", ".."):
        raise HostApiError(f"unusable datastore name {datastore!r}", datastore=datastore)
    return posixpath.join(base, datastore)


def vmfs_flat_path(ds_path_text: str) -> str:
    """``[ds] folder/disk.vmdk`` -> ``/vmfs/volumes/ds/folder/disk-flat.vmdk``."""
    ds, path = parse_ds_path(ds_path_text)
    return posixpath.join(datastore_root(ds), flat_path(path))


__all__ = [
    "VMFS_ROOT",
    "datastore_root",
    "ds_path",
    "flat_path",
    "is_delta",
    "parse_ds_path",
    "vmfs_flat_path",
]
