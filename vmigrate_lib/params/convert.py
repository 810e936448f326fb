"""Checking one raw value, one section: names, types, ranges, choices; never a value echoed.

A rejected value may be a pasted secret, so no message here repeats it; each error names
the parameter.  The whole file's checks (required keys, cross-field rules, the workspace)
are :func:`vmigrate_lib.params.validate`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ParameterError
from ..modes import (
    ALGORITHMS,
    CERTIFY_MODES,
    CHANGE_TRACKING,
    HOST_TYPES,
    IDENTITY_POLICIES,
    READY_MODES,
    SSH_COMPRESS,
    SSH_MODES,
    pick,
)
from ..units import parse_duration, parse_size
from .hostrefs import REFERENCE_HINT, check_field, check_host, check_text, is_secret_key
from .paramfile import shown
from .schema import HOST_CLASSES, HostBase, HostParams

#: Allowed values of the fields that take a word (the CLI's choices come from here too).
CHOICES: dict[str, tuple[str, ...]] = {
    "type": HOST_TYPES,
    "change_tracking": CHANGE_TRACKING,
    "certify": CERTIFY_MODES,
    "ready": READY_MODES,
    "algorithm": ALGORITHMS,
    "ssh_mode": SSH_MODES,
    "ssh_compress": SSH_COMPRESS,
    "identity": IDENTITY_POLICIES,
}
_SIZES = {"hash_block", "certify_block", "checkpoint_bytes"}
_RATES = {"bwlimit"}  #: sizes per second ("50MB", "50MB/s"); 0 or "" for no cap
_DURATIONS = {"interval", "downtime_budget", "target_interval", "shutdown_timeout",
              "api_timeout", "snapshot_remove_timeout", "command_timeout",
              "max_sync_age", "probe_timeout", "ready_timeout", "rollback_grace",
              "expected_shutdown", "expected_boot"}
#: Durations that 0 would break (a zero socket timeout fails every API call).
_POSITIVE_DURATIONS = {"api_timeout", "snapshot_remove_timeout", "command_timeout"}
#: Fields holding a duration in seconds (written ``90s``, ``5m``, ``1h`` in a file).
DURATIONS = frozenset(_DURATIONS)
_RANGES = {"max_cycles": (1, 1000), "full_certify_within": (0, 1000), "parallel_disks": (1, 16),
           "ssh_port": (1, 65535)}
#: Never in a file: each run decides (CLI flag, runbook parameter).
PER_RUN = {"force": "overriding a no-go is decided per run: give vmigrate cutover --force "
                     "(vmigrate run cutover --force, or the cutover runbook's force "
                     "parameter), never in a params file"}


_S = TypeVar("_S")  #: a section's dataclass


def convert_value(section: str, name: str, value: Any, default: Any) -> Any:
    """One value of ``section.name`` checked and converted like its ``default``'s type."""
    where = f"{section}.{name}" if section else name
    if is_secret_key(name):
        raise ParameterError(f"parameter {where} holds a secret value", hint=REFERENCE_HINT,
                             parameter=where)
    try:
        if name in _SIZES:
            v: Any = parse_size(value)
            if v <= 0 or v % 512:
                raise ValueError("must be a positive multiple of 512 bytes")
            return v
        if name in _RATES:
            if isinstance(value, str):
                text = value.strip()
                text = text[:-2] if text.endswith("/s") else text
                return parse_size(text) if text else 0
            return parse_size(value)
        if name in _DURATIONS:
            seconds = parse_duration(value)
            if seconds <= 0 and name in _POSITIVE_DURATIONS:
                raise ValueError("must be more than 0 seconds")
            return seconds
        if name == "probes":
            return _ports(value)
        if name == "network_map":
            return _network_map(value)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, not {_kind(value)}")
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"must be an integer, not {_kind(value)}")
            lo, hi = _RANGES.get(name, (value, value))
            if not lo <= value <= hi:
                raise ValueError(f"must be from {lo} to {hi}")
            return value
        if isinstance(default, (str, Path)):
            if not isinstance(value, (str, Path)):
                raise ValueError(f"must be a string, not {_kind(value)}")
            value = str(value)
            check_field(where, name, value)
            check_text(where, value, multiline=name == "probe_command")
            return pick(CHOICES[name], value) if name in CHOICES else value
    except ValueError as exc:
        raise ParameterError(f"parameter {where}: {exc}", parameter=where) from exc
    return value


def _kind(value: Any) -> str:
    """What a rejected value is, without repeating it."""
    return {str: "a string", int: "a number", float: "a number", bool: "true/false",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _plain(text: Any) -> bool:
    return isinstance(text, str) and 0 < len(text) <= 256 and text.isprintable()


def _ports(value: Any) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, (list, tuple)) or len(items) > 100 or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 < x < 65536 for x in items):
        raise ValueError("must be a list of TCP ports (1-65535)")
    return tuple(items)


def _network_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > 1000 or not all(
            _plain(k) and _plain(v) for k, v in value.items()):
        raise ValueError("must map source network names to destination network names "
                         "(printable text, one line each)")
    return dict(value)


def build_section(cls: type[_S], section: str, raw: Any, required: tuple[str, ...] = ()) -> _S:
    """A section's dataclass from its raw mapping: unknown, per-run and secret keys refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParameterError(f"parameter {section} must be a mapping", parameter=section)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if is_secret_key(key):
            convert_value(section, shown(key), value, "")
        if key in PER_RUN:
            raise ParameterError(f"parameter {section}.{key} does not belong in a params file",
                                 hint=PER_RUN[key], parameter=f"{section}.{key}")
        if key not in known:
            raise ParameterError(
                f"unknown parameter {section + '.' if section else ''}{shown(key)}",
                hint=f"known parameters here: {', '.join(sorted(known))}",
                parameter=f"{section}.{shown(key)}" if section else shown(key),
            )
        f = known[key]
        default = f.default
        values[key] = convert_value(section, key, value, default)
    if isinstance(cls, type) and issubclass(cls, HostBase):
        check_host(section, values)
    for key in required:
        if not values.get(key):
            raise ParameterError(
                f"missing parameter {section + '.' if section else ''}{key}", parameter=key
            )
    return cls(**values)


def host_section(side: str, raw: Any) -> HostParams:
    """One host's section as the kind its ``type`` names (default lab); a key another
    kind takes is refused in one line naming the key and the kind."""
    kind = convert_value(side, "type", raw.get("type", "lab") if isinstance(raw, Mapping) else "lab",
                    "")
    cls = HOST_CLASSES[kind]
    if isinstance(raw, Mapping):
        mine = {f.name for f in fields(cls)}
        for key in raw:
            other = next((c for k, c in HOST_CLASSES.items()
                          if k != kind and key in {f.name for f in fields(c)}), None)
            if key not in mine and other is not None:
                # a pasted secret is refused as one first (without repeating it)
                convert_value(side, key, raw[key], other.__dataclass_fields__[key].default)
                raise ParameterError(
                    f"parameter {side}.{key} does not apply to a {kind} host "
                    f"({side}.type is {kind})",
                    hint=f"remove it, or set {side}.type: {other.type} if the host is one",
                    parameter=f"{side}.{key}")
    return build_section(cls, side, raw, required=("host",))
