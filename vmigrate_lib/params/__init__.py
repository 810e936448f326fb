"""Migration parameters: one schema for the CLI's YAML file and the runbooks.

The package: :func:`validate` here (the whole file's rules), ``schema`` (sections and
defaults), ``convert`` (one value, one section), ``paramfile`` (reading a file strictly),
``hostrefs`` (host names and secret references) and ``workspace_rules`` (which folder may
be a workspace).  Callers import everything from ``vmigrate_lib.params``.

papermill checks nothing about parameters, so every face validates through
:func:`validate` (names, types, ranges, the workspace folder) before anything is
touched or archived and before any kernel starts.  Secrets are never values
here, only references (an environment variable or keyring entry); no error
message repeats a value, since a rejected value may be a pasted secret.
"""


from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ..modes import HOSTS_KINDS, pick
from .convert import CHOICES, DURATIONS, PER_RUN, build_section, convert_value, host_section
from .hostrefs import NAME, check_text, is_secret_key
from .paramfile import read_params_file, shown
from .paths import lab_root_under
from .schema import (
    CutoverParams,
    EsxiHostParams,
    HostBase,
    HostParams,
    LabHostParams,
    MigrationParams,
    SyncParams,
    VsphereHostParams,
    default_of,
)
from .workspace_rules import ESXI_DATASTORES, check_workspace

__all__ = ["CHOICES", "DURATIONS", "CutoverParams", "EsxiHostParams", "HostParams",
           "LabHostParams", "MigrationParams", "SyncParams", "VsphereHostParams", "default_of",
           "load", "merge", "validate"]

_CHANGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{1,63}\Z")


def validate(raw: Mapping[str, Any], base_dir: Path | None = None) -> MigrationParams:
    """Check a parameter mapping and build :class:`MigrationParams` (or raise)."""
    if not isinstance(raw, Mapping):
        raise ParameterError("parameters must be a mapping of names to values")
    top = dict(raw)
    allowed = {f.name for f in fields(MigrationParams)}
    for key in top:
        if is_secret_key(key):
            convert_value("", shown(key), top[key], "")
        if key in PER_RUN:
            raise ParameterError(f"parameter {key} does not belong in a params file",
                                 hint=PER_RUN[key], parameter=str(key))
        if key not in allowed:
            raise ParameterError(
                f"unknown parameter {shown(key)}",
                hint=f"known parameters: {', '.join(sorted(allowed))}",
                parameter=shown(key),
            )
    for key in ("vm", "source", "destination", "workspace"):
        if key not in top or (isinstance(top[key], str) and not top[key]) or top[key] is None:
            raise ParameterError(f"missing parameter {key}", parameter=key)
    for key in ("vm", "dest_name"):
        value = top.get(key, "")
        if value and (not isinstance(value, str) or not NAME.match(value)):
            raise ParameterError(
                f"parameter {key}: not a valid VM name",
                hint="use letters, digits, '.', '_' and '-' (at most 80), on one line",
                parameter=key,
            )
    source = host_section("source", top["source"])
    dest = host_section("destination", top["destination"])
    if base_dir is not None:  # relative lab roots: the project's, never the process's cwd
        source, dest = lab_root_under(source, base_dir), lab_root_under(dest, base_dir)
    if dest.ssh_mode != HostBase.ssh_mode:
        raise ParameterError(
            "parameter destination.ssh_mode has no effect: the transfer mode is the source's",
            hint="set source.ssh_mode (relay, direct or auto) instead",
            parameter="destination.ssh_mode",
        )
    sync = build_section(SyncParams, "sync", top.get("sync"))
    cutover = build_section(CutoverParams, "cutover", top.get("cutover"))
    if cutover.identity == "retire-source" and top.get("dest_name") not in (None, "", top["vm"]):
        raise ParameterError(
            "parameter dest_name: with cutover.identity retire-source the copy takes the "
            "source's name", hint="remove dest_name, or set cutover.identity: new-name",
            parameter="dest_name")
    change_id = top.get("change_id") or ""
    if change_id and (not isinstance(change_id, str) or not _CHANGE_ID.match(change_id)):
        raise ParameterError(
            "parameter change_id: not a change reference",
            hint="give the change ticket, e.g. CHG-12345 (letters, digits, . _ / -)",
            parameter="change_id",
        )
    try:
        hosts = pick(HOSTS_KINDS, top.get("hosts") or "")
    except ValueError:
        raise ParameterError("parameter hosts must be lab or real", parameter="hosts") from None
    for side, hp in (("source", source), ("destination", dest)):
        if hosts and (hp.type == "lab") != (hosts == "lab"):
            raise ParameterError(
                f"parameter {side}.type is {hp.type!r} but hosts is {hosts!r}",
                hint="a rehearsal uses lab hosts on both sides, a real change none",
                parameter=f"{side}.type",
            )
    if not isinstance(top["workspace"], (str, Path)):
        raise ParameterError("parameter workspace must be a folder name", parameter="workspace")
    workspace = Path(check_text("workspace", str(top["workspace"])))
    if base_dir is not None and not workspace.is_absolute():
        workspace = base_dir / workspace
    budget = convert_value("", "downtime_budget", top.get("downtime_budget", 120.0), 0.0)
    if budget <= 0:
        raise ParameterError("parameter downtime_budget must be positive", parameter="downtime_budget")
    operator = top.get("operator", "") or ""
    if not isinstance(operator, str):
        raise ParameterError("parameter operator must be a string", parameter="operator")
    check_text("operator", operator)
    _check_workspace(workspace, (source, dest), base_dir)
    return MigrationParams(
        vm=top["vm"],
        dest_name=top.get("dest_name", "") or "",
        source=source,
        destination=dest,
        workspace=workspace,
        operator=operator,
        downtime_budget=budget,
        change_id=change_id,
        hosts=hosts,
        sync=sync,
        cutover=cutover,
    )


def _check_workspace(workspace: Path, hosts: tuple[HostParams, ...],
                     base_dir: Path | None) -> None:
    """The workspace is vmigrate's, new or empty; never in a lab or on a datastore."""
    base = base_dir or Path.cwd()
    labs = [base / hp.lab_root for hp in hosts if isinstance(hp, LabHostParams)]
    stores = {ESXI_DATASTORES,
              *(Path(hp.datastore_root) for hp in hosts
                if isinstance(hp, (VsphereHostParams, EsxiHostParams)))}
    check_workspace(base / workspace, labs, stores)


def load(path: str | Path, overrides: Mapping[str, Any] | None = None) -> MigrationParams:
    """Read a YAML params file (relative paths inside are taken from cwd)."""
    merged = merge(read_params_file(path), overrides or {})
    return validate(merged)


def merge(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides (``sync.certify=full``) onto a raw parameter mapping."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split(".")
        target = out
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ParameterError(f"parameter {part} is not a section", parameter=key)
            target = nxt
        target[parts[-1]] = value
    return out
