"""What ``vim-cmd`` prints, read strictly into dataclasses.

vim-cmd answers in three shapes (fixtures: ``tests/fixtures/vimcmd``, sources in
their ``SOURCES.md``): a table (``vmsvc/getallvms``), a few fixed lines
(``power.getstate``, ``snapshot.get``) and *vmodl text*, the data objects the
host returns printed one field a line (``get.guest``, ``get.config``,
``get.filelayout``, and every fault).  Each reader accepts exactly those shapes;
anything else is a :class:`VimCmdParseError` naming the command and quoting the
output, never a guess.  A fault printed instead of an answer is a
:class:`VimCmdFault`, which :mod:`.host` turns into vmigrate's errors.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ...errors import VimCmdParseError
from ..host import PowerState

#: How much of an output an error quotes (a table of 500 VMs is not one line).
EXCERPT = 300


def parse_error(command: str, output: str, why: str) -> VimCmdParseError:
    excerpt = output if len(output) <= EXCERPT else output[:EXCERPT] + "..."
    return VimCmdParseError(f"cannot read the output of {command}: {why}: {excerpt!r}",
                            command=command, excerpt=excerpt)


# --- vmodl text ------------------------------------------------------------------------
@dataclass(frozen=True)
class VmodlObject:
    """``(vim.vm.GuestInfo) { field = value, ... }``: a type name and its fields."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name, default)
        return default if value is None else value


@dataclass(frozen=True)
class VimCmdFault:
    """A fault the host printed (``(vim.fault.NotFound) { msg = "..." }``)."""

    name: str  #: NotFound, InvalidPowerState, RestrictedVersion...
    msg: str
    fields: dict[str, Any]


_OPEN_OBJ = re.compile(r"^\((?P<type>[\w.]+)\) \{$")
_OPEN_ARR = re.compile(r"^\((?P<type>[\w.\[\]]+)\) \[$")
_EMPTY_ARR = re.compile(r"^\((?P<type>[\w.\[\]]+)\) \[\]$")
_FIELD = re.compile(r"^(?P<name>[A-Za-z_]\w*) = (?P<value>.*?)$")
_NULL = re.compile(r"^\([\w.\[\]]+\) null$")
_REF = re.compile(r"^'(?P<ref>[\w.]+:[^']*)'$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_FAULT = re.compile(r"^\((?P<type>(?:vim|vmodl)(?:\.\w+)*\.fault\.\w+)\) \{$")


class _Lines:
    """The output's lines, stripped, one at a time (the grammar is line-based)."""

    def __init__(self, lines: list[str], command: str, text: str) -> None:
        self.lines, self.i, self.command, self.text = lines, 0, command, text

    def next(self) -> str:
        if self.i >= len(self.lines):
            raise parse_error(self.command, self.text, "the output ends inside an object")
        line = self.lines[self.i].strip()
        self.i += 1
        return line

    def error(self, why: str) -> VimCmdParseError:
        return parse_error(self.command, self.text, f"line {self.i}: {why}")


def _scalar(raw: str, lines: _Lines) -> Any:
    """One value written on its line (a trailing comma already removed)."""
    if raw == "<unset>" or _NULL.match(raw):
        return None
    if raw in ("true", "false"):
        return raw == "true"
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        # ESXi prints a string between quotes without escaping quotes inside it
        # (fixture 8.0/fault-notfound.txt): the value is what lies between the outer two.
        return raw[1:-1]
    if _NUMBER.match(raw):
        return float(raw) if "." in raw else int(raw)
    m = _REF.match(raw)
    if m:
        return m.group("ref")
    raise lines.error(f"a value vmigrate does not know: {raw!r}")


def _value(raw: str, lines: _Lines) -> Any:
    m = _OPEN_OBJ.match(raw)
    if m:
        return _object(m.group("type"), lines)
    m = _OPEN_ARR.match(raw)
    if m:
        return _array(lines)
    return _scalar(raw, lines)


def _object(type_name: str, lines: _Lines) -> VmodlObject:
    obj = VmodlObject(type_name)
    while True:
        line = lines.next()
        if line in ("}", "},"):
            return obj
        m = _FIELD.match(line)
        if m is None:
            raise lines.error(f"not a field of {type_name}: {line!r}")
        obj.fields[m.group("name")] = _value(m.group("value").removesuffix(","), lines)


def _array(lines: _Lines) -> list[Any]:
    items: list[Any] = []
    while True:
        line = lines.next()
        if line in ("]", "],"):
            return items
        items.append(_value(line.removesuffix(","), lines))


def parse_vmodl(command: str, text: str, header: str | None = None) -> VmodlObject:
    """The one data object ``text`` prints, after its ``header`` line (``Guest
    information:``; None: at most one line ending in ``:``, for outputs whose header no
    public source shows) and blank lines; nothing may follow it."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if header is not None:
        if not lines or lines[0].strip() != header:
            raise parse_error(command, text, f"expected {header!r} first")
        lines = lines[1:]
    elif lines and lines[0].rstrip().endswith(":") and not lines[0].startswith("("):
        lines = lines[1:]
    reader = _Lines(lines, command, text)
    if not lines:
        raise parse_error(command, text, "no data object")
    m = _OPEN_OBJ.match(reader.next())
    if m is None:
        raise reader.error("expected '(type) {'")
    obj = _object(m.group("type"), reader)
    if reader.i != len(lines):
        raise reader.error("more output after the data object")
    return obj


def parse_vmodl_array(command: str, text: str) -> list[Any]:
    """The one array ``text`` prints: ``(type) [`` items ``]``, or ``(type) []`` when empty
    (``hostsvc/autostartmanager/get_autostartseq``)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise parse_error(command, text, "no array")
    reader = _Lines(lines, command, text)
    first = reader.next()
    if _EMPTY_ARR.match(first):
        items: list[Any] = []
    elif _OPEN_ARR.match(first):
        items = _array(reader)
    else:
        raise reader.error("expected '(type) ['")
    if reader.i != len(lines):
        raise reader.error("more output after the array")
    return items


def parse_vmodl_objects(command: str, text: str) -> list[VmodlObject]:
    """Every data object ``text`` prints, each after at most one line ending in ``:``
    (``get.filelayout`` prints the VM's FileInfo and its FileLayout: Apache VCL's reader
    of it, cited in tests/fixtures/vimcmd/SOURCES.md, keys its result by both types)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    reader = _Lines(lines, command, text)
    objects: list[VmodlObject] = []
    while reader.i < len(lines):
        line = reader.next()
        m = _OPEN_OBJ.match(line)
        if m is not None:
            objects.append(_object(m.group("type"), reader))
        elif not line.endswith(":") or line.startswith("("):
            raise reader.error("expected a '(type) {' data object")
    if not objects:
        raise parse_error(command, text, "no data object")
    return objects


def find_fault(command: str, text: str) -> VimCmdFault | None:
    """The fault printed in ``text`` (alone or after a progress line such as
    ``Powering off VM:``), or None when there is none."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for k, line in enumerate(lines):
        m = _FAULT.match(line.rstrip())
        if m is None:
            continue
        obj = _object(m.group("type"), _Lines(lines[k + 1:], command, text))
        return VimCmdFault(m.group("type").rsplit(".", 1)[-1], str(obj.get("msg", "")),
                           obj.fields)
    return None


# --- vmsvc/getallvms ---------------------------------------------------------------------
@dataclass(frozen=True)
class VmRow:
    """One line of ``vmsvc/getallvms``."""

    vmid: int
    name: str
    datastore: str
    vmx: str  #: relative to the datastore: ``folder/name.vmx``
    guest: str
    version: str
    annotation: str = ""


_HEADER = re.compile(r"^Vmid\s+Name\s+File\s+Guest OS\s+Version\s+Annotation\s*$")
_ROW = re.compile(r"^(?P<vmid>\d+)\s+(?P<name>.*?)\s+\[(?P<ds>[^\]]+)\] (?P<vmx>.*?\.vmx)"
                  r"\s+(?P<guest>\S+)\s+(?P<version>vmx-\d+)(?:\s+(?P<note>.*?))?\s*$")


def parse_getallvms(text: str) -> list[VmRow]:
    """The table: a header, then a row per VM.  Names may hold spaces (the datastore
    path's ``[`` ends them).  A line that is no row continues the previous row's
    annotation (vim-cmd prints annotations as they are, line breaks included;
    scripts filter rows with ``^[0-9]``); before any row it is an error."""
    command = "vim-cmd vmsvc/getallvms"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not _HEADER.match(lines[0]):
        raise parse_error(command, text, "no 'Vmid Name File Guest OS Version Annotation' header")
    rows: list[VmRow] = []
    for line in lines[1:]:
        m = _ROW.match(line)
        if m is None:
            if not rows:
                raise parse_error(command, text, f"not a VM row: {line!r}")
            last = rows[-1]
            rows[-1] = VmRow(last.vmid, last.name, last.datastore, last.vmx, last.guest,
                             last.version, f"{last.annotation}\n{line}".strip("\n"))
            continue
        rows.append(VmRow(int(m["vmid"]), m["name"], m["ds"], m["vmx"], m["guest"],
                          m["version"], m["note"] or ""))
    return rows


# --- vmsvc/power.getstate ----------------------------------------------------------------
_POWER = {"Powered on": PowerState.ON, "Powered off": PowerState.OFF,
          "Suspended": PowerState.SUSPENDED}


def parse_power_state(text: str, vmid: int) -> PowerState:
    """``Retrieved runtime info`` then ``Powered on|Powered off|Suspended``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) != 2 or lines[0] != "Retrieved runtime info" or lines[1] not in _POWER:
        raise parse_error(f"vim-cmd vmsvc/power.getstate {vmid}", text,
                          "expected 'Retrieved runtime info' and a power state")
    return _POWER[lines[1]]


# --- vmsvc/snapshot.get ------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotRow:
    id: int
    name: str
    description: str
    created: float  #: seconds since the epoch, read as UTC (the host prints no zone)
    state: str  #: "powered off" / "powered on" / "suspended" when taken
    level: int  #: 0 for a root snapshot, 1 for its child...
    parent: int | None = None


_SNAP_LINE = re.compile(r"^(?P<dashes>-+)Snapshot (?P<key>Name|Id|Desciption|Description|"
                        r"Created On|State)\s*:(?: (?P<value>.*))?$")
_TREE_MARK = re.compile(r"^(?:-*\|-(?:ROOT|CHILD))$")
_KEYS = ("Name", "Id", "Desciption", "Created On", "State")


def _created(text: str) -> float:
    """``10/4/2026 19:0:52``: month/day/year, hour:minute:second, not zero-padded."""
    date, _, time_ = text.partition(" ")
    mo, d, y = (int(x) for x in date.split("/"))
    h, mi, s = (int(x) for x in time_.split(":"))
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC).timestamp()


def _snap_fields(text: str, vmid: int) -> Iterator[tuple[int, dict[str, str]]]:
    command = f"vim-cmd vmsvc/snapshot.get {vmid}"
    current: dict[str, str] = {}
    level = 0
    for raw in text.splitlines()[1:]:
        line = raw.strip()
        if not line or _TREE_MARK.match(line):
            continue
        line = line.lstrip("| ")
        m = _SNAP_LINE.match(line)
        if m is None:
            raise parse_error(command, text, f"not a snapshot line: {raw!r}")
        key = "Desciption" if m["key"] == "Description" else m["key"]
        if key == "Name":
            if current:
                yield level, current
            current, level = {}, len(m["dashes"]) // 2 - 1
        elif not current:
            raise parse_error(command, text, f"{key} before a snapshot name")
        current[key] = m["value"] or ""
    if current:
        yield level, current


def parse_snapshots(text: str, vmid: int) -> list[SnapshotRow]:
    """``Get Snapshot:`` then a tree of snapshots, each five lines indented by its
    depth (two dashes a level); every field must be there, the id too (ESXi before
    6.x printed none: fixture pre-6.7/snapshot.get-no-id.txt is refused)."""
    command = f"vim-cmd vmsvc/snapshot.get {vmid}"
    if not text.strip() or text.splitlines()[0].strip() != "Get Snapshot:":
        raise parse_error(command, text, "expected 'Get Snapshot:' first")
    rows: list[SnapshotRow] = []
    parents: list[int] = []
    for level, f in _snap_fields(text, vmid):
        missing = [k for k in _KEYS if k not in f]
        if missing:
            raise parse_error(command, text, f"snapshot {f.get('Name')!r} has no "
                              f"{', '.join(missing)} line")
        try:
            sid, created = int(f["Id"]), _created(f["Created On"])
        except ValueError as exc:
            raise parse_error(command, text, f"snapshot {f['Name']!r}: {exc}") from exc
        if level > len(parents):
            raise parse_error(command, text, f"snapshot {f['Name']!r} has no parent")
        del parents[level:]
        rows.append(SnapshotRow(sid, f["Name"], f["Desciption"], created, f["State"], level,
                                parents[-1] if parents else None))
        parents.append(sid)
    return rows


# --- vmsvc/message ------------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    """A question the VM waits on (``Virtual machine message <id>:`` and its text)."""

    id: str
    text: str


_MESSAGE = re.compile(r"^Virtual machine message (?P<id>[^:\s]+):$")


def parse_message(text: str, vmid: int) -> Question | None:
    """``No message.``, or the pending question: its id and the lines after it (the
    choices' layout is in no public source, so they stay text for the operator)."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if lines == ["No message."]:
        return None
    m = _MESSAGE.match(lines[0]) if lines else None
    if m is None:
        raise parse_error(f"vim-cmd vmsvc/message {vmid}", text,
                          "expected 'No message.' or 'Virtual machine message <id>:'")
    return Question(m["id"], " ".join(ln.strip() for ln in lines[1:]))


# --- solo/registervm ---------------------------------------------------------------------
def parse_registered_id(text: str, vmx: str) -> int | None:
    """The new vmid (ESXi 7/8 print it), or None when nothing was printed (older hosts
    print nothing on success: the caller looks the VM up)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    if len(lines) == 1 and lines[0].isdigit():
        return int(lines[0])
    raise parse_error(f"vim-cmd solo/registervm {vmx}", text, "expected the new VM's id")


__all__ = ["Question", "SnapshotRow", "VimCmdFault", "VmRow", "VmodlObject", "find_fault",
           "parse_error", "parse_getallvms", "parse_message", "parse_power_state",
           "parse_registered_id", "parse_snapshots", "parse_vmodl", "parse_vmodl_objects"]
