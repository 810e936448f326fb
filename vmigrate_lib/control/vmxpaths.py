"""Which files a ``.vmx`` names that Bob cannot reach on the destination host.

Alice's ``.vmx`` may name files outside her folder or files the cutover did not
copy: a CD/DVD image on a datastore the destination host does not mount, an ISO
in her folder too large to copy, a ``workingDir`` or ``sched.swap.dir`` on her
datastore.  On the destination such a reference makes the power-on fail or stop
at a question (issue 11 item 6; real-esxi notes F10), or puts Bob's snapshots
and swap into Alice's folder.  :func:`plan_rewrites` decides per key what Bob's
``.vmx`` gets instead, each with the reason the cutover journals.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

VMFS_VOLUMES = "/vmfs/volumes/"

#: Directories ESXi defaults to the VM's own folder when the key is absent.
DIR_KEYS = frozenset({"workingdir", "sched.swap.dir"})

_DEVICE = re.compile(r"^(?P<dev>(?:ide|sata|scsi|nvme)\d+:\d+|floppy\d+)\.filename$")


@dataclass(frozen=True)
class Reach:
    """What the destination host can open: its datastores (names and volume UUIDs,
    as ``/vmfs/volumes/<x>`` names them) and the files copied into Bob's folder."""

    source_folder: str
    copied: frozenset[str]  #: base names of Alice's files that are in Bob's folder
    volumes: frozenset[str] | None = None  #: None = unknown: only copied files are reachable

    def volume_on_dest(self, volume: str) -> bool:
        return self.volumes is not None and volume in self.volumes


@dataclass(frozen=True)
class Rewrite:
    """One key's fate: ``value`` None drops the key; ``extra`` adds keys after it."""

    value: str | None
    note: str = ""
    extra: tuple[tuple[str, str], ...] = ()


def split_vmfs(value: str) -> tuple[str, str] | None:
    """``/vmfs/volumes/<vol>/<rest>`` -> (vol, rest); None for any other value."""
    if not value.startswith(VMFS_VOLUMES):
        return None
    vol, _, rest = value[len(VMFS_VOLUMES):].partition("/")
    return (vol, rest) if vol else None


def in_source_folder(value: str, reach: Reach) -> bool:
    """A bare or relative name (the VM's folder) or an absolute path into a folder named
    like Alice's.  The volume is not compared: ESXi writes it as a UUID we may not know."""
    parts = split_vmfs(value)
    if parts is None:
        return not value.startswith("/")
    return posixpath.dirname(parts[1].rstrip("/")).strip("/") == reach.source_folder.strip("/")


def image_devices(entries: Mapping[str, str]) -> dict[str, str]:
    """Device prefix (``ide1:0``, ``floppy0``) -> its image file, for CD/DVD and floppy
    images (``deviceType = "cdrom-image"``, ``fileType = "file"``)."""
    out = {}
    for key, value in entries.items():
        m = _DEVICE.match(key)
        if m is None:
            continue
        dev = m.group("dev")
        kind = entries.get(f"{dev}.devicetype", "").lower()
        ftype = entries.get(f"{dev}.filetype", "").lower()
        if kind == "cdrom-image" or (dev.startswith("floppy") and ftype == "file"):
            out[dev] = value
    return out


def reachable(value: str, reach: Reach) -> bool:
    """Whether the destination can open the file ``value`` names."""
    parts = split_vmfs(value)
    if parts is not None:
        if reach.volume_on_dest(parts[0]):
            return True
        return in_source_folder(value, reach) and posixpath.basename(value) in reach.copied
    if value.startswith("/"):
        return True  # a host path (e.g. /usr/lib/vmware/isoimages/...): on every ESXi
    return posixpath.basename(value) in reach.copied


def image_rewrite(dev: str, value: str, reach: Reach) -> Rewrite | None:
    """A CD/DVD or floppy image Bob cannot open: keep the name, do not connect at power-on."""
    if not value or reachable(value, reach):
        return None
    what = "floppy" if dev.startswith("floppy") else "CD/DVD"
    return Rewrite(value, f"{dev} ({what}) image {value} is not on the destination: set not to "
                   "connect at power-on (startConnected FALSE); attach it again after the cutover",
                   extra=((f"{dev}.startConnected", "FALSE"),))


def dir_rewrite(key: str, value: str, reach: Reach) -> Rewrite | None:
    """``workingDir``/``sched.swap.dir``: Alice's folder or a datastore B lacks -> dropped
    (ESXi then uses Bob's own folder); a datastore B mounts too -> kept."""
    parts = split_vmfs(value)
    if parts is None:
        return None
    vol, rest = parts
    if rest.rstrip("/").strip("/") == reach.source_folder.strip("/"):
        return Rewrite(None, f"{key} = {value} named the source VM's folder: dropped, so Bob's "
                       "own folder is used")
    if not reach.volume_on_dest(vol):
        return Rewrite(None, f"{key} = {value} is on datastore {vol}, which the destination host "
                       "does not mount: dropped, so Bob's own folder is used")
    return None


def path_rewrite(key: str, value: str, reach: Reach) -> Rewrite | None:
    """Any other absolute ``/vmfs/volumes`` value: a file of Alice's folder -> the same name in
    Bob's folder; a datastore B lacks -> dropped; one B mounts -> kept."""
    parts = split_vmfs(value)
    if parts is None:
        return None
    if in_source_folder(value, reach):
        name = posixpath.basename(value.rstrip("/"))
        return Rewrite(name, f"{key} = {value} named the source VM's folder: now {name} in "
                       "Bob's folder")
    if not reach.volume_on_dest(parts[0]):
        return Rewrite(None, f"{key} = {value} is on datastore {parts[0]}, which the destination "
                       "host does not mount: dropped")
    return None


def plan_rewrites(entries: Mapping[str, str], reach: Reach,
                  skip: Collection[str] = ()) -> dict[str, Rewrite]:
    """Lower-case key -> its rewrite, for the keys that need one (``skip``: keys the
    caller rewrites itself, e.g. disks and files renamed into Bob's folder)."""
    out: dict[str, Rewrite] = {}
    images = image_devices(entries)
    for key, value in entries.items():
        if key in skip:
            continue
        m = _DEVICE.match(key)
        if m is not None and m.group("dev") in images:
            rw = image_rewrite(m.group("dev"), value, reach)
        elif key in DIR_KEYS:
            rw = dir_rewrite(key, value, reach)
        else:
            rw = path_rewrite(key, value, reach)
        if rw is not None:
            out[key] = rw
    return out


__all__ = [
    "DIR_KEYS",
    "Reach",
    "Rewrite",
    "image_devices",
    "in_source_folder",
    "plan_rewrites",
    "reachable",
    "split_vmfs",
]
