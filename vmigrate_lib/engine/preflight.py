"""Preflight: every precondition of a migration, checked before anything changes.

Each check yields a line (name, ok, detail); the first failing check's error is
raised after all checks that can run have run, so the operator sees the whole
picture at once and nothing on either host was touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..control.host import VMIGRATE_SNAPSHOT_PREFIX, VmInfo
from ..errors import (
    ChangeTrackingOff,
    DatastoreNotFound,
    DestinationExists,
    DiskMismatch,
    InsufficientSpace,
    NotFoundError,
    PreflightError,
    StraySnapshots,
    VmigrateError,
)
from ..units import fmt_bytes
from .claim import claim_path, claimed_error, describe, own_id, read_claim
from .context import OWNER_MARKER, Migration
from .destination import growth, other_pending, owned_by, read_marker, size_mismatch

#: Keep this much free on the destination beyond what the copy needs.
SPACE_MARGIN = 0.02


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    error: VmigrateError | None = None


@dataclass
class PreflightReport:
    checks: list[Check] = field(default_factory=list)
    vm: VmInfo | None = None
    bytes_needed: int = 0
    tracking: dict[int, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def first_error(self) -> VmigrateError | None:
        return next((c.error for c in self.checks if c.error is not None), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "bytes_needed": self.bytes_needed,
        }


def run_preflight(m: Migration, *, raise_on_failure: bool = True) -> PreflightReport:
    """Check everything; raise the first failure (after reporting all).

    Pure: it writes nothing, not even to the workspace (whose journal may belong
    to another migration until the identity check has passed).
    """
    report = PreflightReport()

    def add(name: str, ok: bool, detail: str, error: VmigrateError | None = None) -> None:
        report.checks.append(Check(name, ok, detail, error))
        m.reporter.event("check", name=name, ok=ok, detail=detail)

    try:
        _checks(m, report, add)
    except NotFoundError as exc:  # nothing further can be checked without it
        add("found", False, exc.one_line(), exc)
    err = report.first_error()
    if err is not None and raise_on_failure:
        raise err
    return report


def _checks(m: Migration, report: PreflightReport, add: Any) -> None:
    p = m.params
    vm = m.vm()
    report.vm = vm
    add("source VM", True, f"{vm.name} on {vm.host}, {vm.power.value}, {len(vm.disks)} disk(s)")
    if not vm.disks:
        add("disks", False, "the VM has no disks", DiskMismatch(f"VM {vm.name} has no disks"))
        return
    for d in vm.disks:
        add(f"disk {d.key}", True, f"{d.label} {d.ds_path} {fmt_bytes(d.capacity)}")

    # what this host's implementation needs to move the VM (e.g. vSphere: disk placement)
    for check in m.source.migration_checks(vm):
        add(check.name, check.ok, check.detail, check.error)

    # change tracking
    mode = p.sync.change_tracking
    for d in vm.disks:
        report.tracking[d.key] = d.cbt_enabled
    off = [d for d in vm.disks if not d.cbt_enabled]
    if mode == "hash":
        add("change tracking", True, "not used: hash-compare every cycle (sync.change_tracking=hash)")
    elif not off:
        add("change tracking", True, "on for every disk")
    elif mode == "require" and not p.sync.allow_enable_cbt:
        add(
            "change tracking", False, f"off for {len(off)} disk(s)",
            ChangeTrackingOff(
                f"change tracking is off on VM {vm.name} and sync.change_tracking=require",
                hint="set sync.allow_enable_cbt=true to let vmigrate enable it "
                "(costs a brief stun), or use change_tracking=auto for hash-compare",
                vm=vm.name,
            ),
        )
    elif p.sync.allow_enable_cbt:
        add("change tracking", True, f"off for {len(off)} disk(s): will be enabled (allowed)")
    else:
        add("change tracking", True, f"off for {len(off)} disk(s): hash-compare will be used")

    # snapshots: only this migration's own leftovers are ours to remove
    snaps = m.source.list_snapshots(vm.name)
    claimed = m.workspace.current
    mid = claimed.migration_id if claimed is not None else None
    own_prefix = f"{VMIGRATE_SNAPSHOT_PREFIX}{mid}-" if mid else None
    ours = [s for s in snaps if own_prefix and s.name.startswith(own_prefix)]
    foreign = [s for s in snaps if s not in ours]
    if foreign:
        names = ", ".join(s.name for s in foreign)
        others = [s.name for s in foreign if s.is_vmigrate]
        why = (" (another vmigrate migration of this VM is running or was interrupted: "
               "finish or clean it from its own workspace)" if others else "")
        add(
            "snapshots", False, f"other snapshots present: {names}",
            StraySnapshots(
                f"VM {vm.name} has snapshots this migration did not make: {names}{why}",
                vm=vm.name, snapshots=[s.name for s in foreign],
            ),
        )
    elif ours:
        add("snapshots", True, f"{len(ours)} leftover snapshot(s) of this migration: "
            "the next cycle removes them")
    else:
        add("snapshots", True, "none")

    # one migration per source VM: another migration's claim is refused and named
    claim = read_claim(m, vm)
    if claim is not None and claim.get("migration_id") != own_id(m):
        add("source claim", False, f"claimed by {describe(claim)}", claimed_error(m, vm, claim))
    else:
        add("source claim", True, "claimed by this migration" if claim else
            f"free: the first sync claims it ([{vm.datastore}] {claim_path(vm)})")

    # destination
    dest_ds_name = m.dest_datastore_name
    if dest_ds_name not in m.dest.datastores():
        add(
            "destination datastore", False, f"{dest_ds_name!r} not found on {p.destination.host}",
            DatastoreNotFound(
                f"datastore {dest_ds_name!r} not found on host {p.destination.host}",
                hint=f"available: {', '.join(m.dest.datastores()) or 'none'}",
                datastore=dest_ds_name,
            ),
        )
        return
    ds = m.dst_ds()
    _transfer_mode(m, vm, ds, add)
    state = m.workspace.current
    mid = state.migration_id if state is not None else None
    marker = read_marker(ds, f"{m.dest_folder}/{OWNER_MARKER}")
    ours_at_dest = ds.stat(m.dest_folder) is not None and owned_by(ds, m.dest_folder, mid)
    creator = other_pending(ds, m.dest_folder, mid)
    if m.dest.vm_exists(p.target_name) and not (
            state is not None and state.cutover is not None and state.cutover.registered):
        add(
            "destination name", False, f"a VM named {p.target_name} already exists on {p.destination.host}",
            DestinationExists(
                f"a VM named {p.target_name} already exists on host {p.destination.host}",
                vm=p.target_name, host=p.destination.host,
            ),
        )
        return
    if not ours_at_dest and (ds.stat(m.dest_folder) is not None or creator is not None):
        owner = (f" (made by migration {marker.get('migration_id')})" if marker else
                 f" (being made by migration {creator})" if creator else "")
        add(
            "destination folder", False, f"[{dest_ds_name}] {m.dest_folder} already exists{owner}",
            DestinationExists(
                f"the destination folder [{dest_ds_name}] {m.dest_folder} already exists{owner}",
                hint="choose another dest_name, use the workspace of that migration, "
                "or remove the folder yourself if it is not needed",
                folder=m.dest_folder, datastore=dest_ds_name,
            ),
        )
        return
    add("destination name", True, f"{p.target_name} is free on {p.destination.host}" + (
        " (copy in progress from this workspace)" if ours_at_dest else ""))

    # disk sizes at the destination, and space
    needed = 0
    for d in vm.disks:
        src_stat = m.src_ds(d.datastore).stat(d.path)
        src_alloc = src_stat.allocated if src_stat else d.capacity
        dst_stat = ds.stat(m.dest_disk_path(d)) if ours_at_dest else None
        if dst_stat is not None and dst_stat.size != d.capacity:
            err = size_mismatch(m, d, dst_stat.size)
            if err is not None:
                add(
                    f"destination disk {d.key}", False,
                    f"{m.dest_disk_path(d)} is {fmt_bytes(dst_stat.size)}, "
                    f"source is {fmt_bytes(d.capacity)}", err,
                )
                return
            add(f"destination disk {d.key}", True,
                f"{growth(d, dst_stat.size)}: the copy grows and is hash-compared next cycle")
        needed += max(0, src_alloc - (dst_stat.allocated if dst_stat else 0))
    free = ds.free_space()
    report.bytes_needed = needed
    if needed * (1 + SPACE_MARGIN) > free:
        add(
            "destination space", False, f"needs {fmt_bytes(needed)}, {fmt_bytes(free)} free",
            InsufficientSpace(
                f"datastore {dest_ds_name} on {p.destination.host} has {fmt_bytes(free)} free, "
                f"the copy needs {fmt_bytes(needed * (1 + SPACE_MARGIN))}",
                needed=needed, free=free, datastore=dest_ds_name,
            ),
        )
        return
    add("destination space", True, f"needs {fmt_bytes(needed)}, {fmt_bytes(free)} free")


def _transfer_mode(m: Migration, vm: VmInfo, dst: Any, add: Any) -> None:
    """Data path over SSH: relay through this machine, or direct host to host.

    Only when both datastores can say (``transfer_modes``, duck-typed: the engine
    never imports the SSH data plane); a requested mode that cannot work fails here.
    """
    for name in dict.fromkeys(d.datastore for d in vm.disks):
        src = m.src_ds(name)
        probe = getattr(src, "transfer_modes", None)
        if probe is None or getattr(dst, "transfer_modes", None) is None:
            continue
        r = probe(dst)
        wanted = r["requested"]
        (relay_ok, relay_why), (direct_ok, direct_why) = r["relay"], r["direct"]
        direct_txt = f"direct possible: {direct_why}" if direct_ok else f"direct not possible: {direct_why}"
        relay_txt = "relay possible" if relay_ok else f"relay not possible: {relay_why}"
        where = f"[{name}] -> [{dst.name}]"
        if wanted == "direct" and not direct_ok:
            add("transfer mode", False, f"{where}: direct requested, {direct_txt}", PreflightError(
                f"source.ssh_mode is direct but {m.params.source.host} cannot stream to "
                f"{m.params.destination.host} itself: {direct_why}",
                hint="give the source host a route to the destination (source.ssh_direct_key, "
                "source.ssh_direct_known_hosts: paths on the source host), or use ssh_mode "
                "relay or auto",
                mode="direct",
            ))
        elif not relay_ok and not (wanted != "relay" and direct_ok):
            add("transfer mode", False, f"{where}: {wanted} requested, {relay_txt}", PreflightError(
                f"no data path from {m.params.source.host} to {m.params.destination.host}: "
                f"{relay_why}", mode=wanted,
            ))
        elif wanted == "relay":
            add("transfer mode", True, f"{where}: relay (requested) through this machine; {direct_txt}")
        elif wanted == "direct":
            add("transfer mode", True, f"{where}: direct (requested), {direct_why}; {relay_txt}")
        else:
            used = "direct" if direct_ok else "relay"
            add("transfer mode", True, f"{where}: auto -> {used}; {direct_txt}; {relay_txt}")
