"""Bob's ``.vmx`` and disk descriptors, rewritten from Alice's (pure text, no pyVmomi).

On ESXi, RegisterVM reads ``[ds] bob/bob.vmx``; that file and the small
descriptor ``.vmdk`` of each disk must name Bob's files, not Alice's:

* ``.vmx``: ``displayName`` becomes Bob's name; every value naming one of
  Alice's files (``scsi0:0.fileName``, ``nvram``, ``extendedConfigFile``...;
  bare, relative or ``/vmfs/volumes/...``) names Bob's file in his folder;
  ``sched.swap.derivedName`` (a path on Alice's datastore) is dropped; change
  tracking is turned off (``ctkEnabled``), since the ``-ctk.vmdk`` files do not
  travel; ``uuid.action = "keep"`` keeps Alice's BIOS UUID and MAC addresses
  without the "moved or copied?" question that would block the power-on;
  files Bob cannot reach on the destination (:mod:`.vmxpaths`): a CD/DVD or
  floppy image not copied and not on a datastore B mounts is set not to
  connect at power-on, ``workingDir``/``sched.swap.dir`` naming Alice's folder
  or a datastore B lacks are dropped (ESXi uses the VM's folder), other
  ``/vmfs/volumes`` paths into Alice's folder name Bob's; each with a note.
* descriptor ``.vmdk``: extent lines name Bob's ``-flat.vmdk``;
  ``changeTrackPath`` is dropped.
* anything else (``.nvram``, ``.vmxf``, ``.vmsd``): renamed, content unchanged.

The flat disks themselves never pass through here: the sync copied them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Mapping

from ..errors import HostApiError
from .dspaths import flat_path
from .host import VmInfo
from .vmxpaths import Reach, in_source_folder, plan_rewrites

DESCRIPTOR_MAGIC = b"# Disk DescriptorFile"
#: Descriptors are a few hundred bytes; anything bigger is a data file.
MAX_DESCRIPTOR = 64 * 1024

_VMX_LINE = re.compile(r'^(?P<key>[A-Za-z0-9_.:\-]+)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*$')
_EXTENT = re.compile(r'^(?P<head>(?:RW|RDONLY|NOACCESS)\s+\d+\s+\S+\s+)"(?P<file>[^"]+)"(?P<tail>.*)$')
_DROP_VMX_KEYS = {"sched.swap.derivedname"}


def _basename(value: str) -> str:
    return posixpath.basename(value.replace("\\", "/"))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _entries(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = _VMX_LINE.match(line.strip())
        if m is not None:
            out[m.group("key").lower()] = m.group("value")
    return out


def rewrite_vmx(
    data: bytes, name: str, renames: Mapping[str, str], reach: Reach | None = None,
    notes: list[str] | None = None,
) -> bytes:
    """Alice's ``.vmx`` -> Bob's (see the module docstring for the rules); what was changed
    beyond renaming is appended to ``notes`` with the reason (:mod:`.vmxpaths`)."""
    text = _decode(data)
    nl = _newline(text)
    lines = text.splitlines()
    entries = _entries(lines)
    renamed = {k for k, v in entries.items() if v and _basename(v) in renames
               and (reach is None or in_source_folder(v, reach))}
    reach = reach or Reach(source_folder="", copied=frozenset(renames))
    plan = plan_rewrites(entries, reach, skip=renamed | _DROP_VMX_KEYS)
    forced = {k.lower(): (k, v) for rw in plan.values() for k, v in rw.extra}
    out: list[str] = []
    have_display = have_uuid_action = False
    for line in lines:
        m = _VMX_LINE.match(line.strip())
        if m is None:
            out.append(line)
            continue
        key, value = m.group("key"), m.group("value")
        low = key.lower()
        if low in _DROP_VMX_KEYS:
            continue
        if low == "displayname":
            value, have_display = name, True
        elif low == "uuid.action":
            value, have_uuid_action = "keep", True
        elif low == "ctkenabled" or low.endswith(".ctkenabled"):
            value = "FALSE"
        elif low in renamed:
            value = renames[_basename(value)]
        elif low in forced:
            value = forced.pop(low)[1]
        elif low in plan:
            rw = plan[low]
            if notes is not None and rw.note:
                notes.append(rw.note)
            if rw.value is None:
                continue
            value = rw.value
        out.append(f'{key} = "{value}"')
    out += [f'{k} = "{v}"' for k, v in forced.values()]
    if not have_display:
        out.append(f'displayName = "{name}"')
    if not have_uuid_action:
        out.append('uuid.action = "keep"')
    return _encode(nl.join(out) + nl)


def is_descriptor(data: bytes) -> bool:
    """A text disk descriptor (not a sparse or flat data file)."""
    return len(data) <= MAX_DESCRIPTOR and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(
        DESCRIPTOR_MAGIC
    )


def rewrite_descriptor(data: bytes, renames: Mapping[str, str]) -> bytes:
    """A descriptor whose extents name Bob's flat files, without a change-tracking file."""
    text = _decode(data)
    nl = _newline(text)
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("changetrackpath"):
            continue
        m = _EXTENT.match(stripped)
        if m is not None:
            f = m.group("file")
            line = f'{m.group("head")}"{renames.get(_basename(f), f)}"{m.group("tail")}'
        out.append(line)
    return _encode(nl.join(out) + nl)


def descriptor_name(flat_base: str) -> str:
    """``alice-flat.vmdk`` -> ``alice.vmdk``."""
    return flat_base[: -len("-flat.vmdk")] + ".vmdk" if flat_base.endswith("-flat.vmdk") else flat_base


def vmx_file(source: VmInfo, files: Mapping[str, bytes]) -> str:
    """Which of the files is Alice's ``.vmx``."""
    vmx = sorted(n for n in files if n.endswith(".vmx"))
    if len(vmx) == 1:
        return vmx[0]
    if f"{source.name}.vmx" in vmx:
        return f"{source.name}.vmx"
    raise HostApiError(
        f"{'no' if not vmx else 'more than one'} .vmx in the folder of VM {source.name}"
        + (f" ({', '.join(vmx)})" if vmx else ""),
        hint="the VM's folder must hold its one configuration file (config.files.vmPathName)",
        vm=source.name,
        folder=source.folder,
    )


def disks_outside_folder(source: VmInfo) -> list[str]:
    """Disks whose files are not in the VM's own folder (the cutover copies only that)."""
    return [
        f"{d.label} ({d.ds_path})" for d in source.disks
        if d.datastore != source.datastore
        or posixpath.dirname(flat_path(d.path)).rstrip("/") != source.folder.rstrip("/")
    ]


def prepare(
    name: str, source: VmInfo, files: Mapping[str, bytes], renames: Mapping[str, str],
    dest_volumes: Collection[str] | None = None, notes: list[str] | None = None,
) -> dict[str, bytes]:
    """Bob's files from Alice's: see :meth:`Host.prepare_config_files`.  ``dest_volumes``:
    the datastore names and volume UUIDs the destination host mounts (None: unknown, only
    copied files count as reachable); what was changed and why goes to ``notes``."""
    vmx = vmx_file(source, files)
    renames = {**renames, vmx: f"{name}.vmx"}  # RegisterVM reads folder/<name>.vmx
    missing = []
    for d in source.disks:
        desc = descriptor_name(posixpath.basename(flat_path(d.path)))
        if desc not in files or not is_descriptor(files[desc]):
            missing.append(f"{d.label} ({d.ds_path[: -len('-flat.vmdk')]}.vmdk)")
    if missing:
        raise HostApiError(
            f"the disk descriptor of {', '.join(missing)} is not in the folder of VM "
            f"{source.name} ([{source.datastore}] {source.folder})",
            hint="vmigrate copies the configuration of the VM's own folder; move the disk "
            "into it (storage migration) before the cutover",
            vm=source.name,
        )
    out: dict[str, bytes] = {}
    for n, data in files.items():
        target = renames.get(n, n)
        if n == vmx:
            reach = Reach(source.folder, frozenset(renames),
                          None if dest_volumes is None else frozenset(dest_volumes))
            data = rewrite_vmx(data, name, renames, reach, notes)
        elif n.endswith(".vmdk") and is_descriptor(data):
            data = rewrite_descriptor(data, renames)
        out[target] = data
    return out


__all__ = [
    "descriptor_name",
    "is_descriptor",
    "prepare",
    "rewrite_descriptor",
    "rewrite_vmx",
    "vmx_file",
]
