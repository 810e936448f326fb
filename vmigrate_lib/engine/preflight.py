"""Preflight: every precondition of a migration, checked before anything changes.

The checks are a table (:data:`CHECKS`) of named functions ``(m, ctx) -> Iterable[Check]``
run in order; each yields its lines (name, ok, detail, error).  A failing line marked
``blocks`` stops the later checks (they need what it found missing); the first
failure's error is raised after every check that could run has run, so the operator
sees the whole picture at once and nothing on either host was touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from ..control.host import VMIGRATE_SNAPSHOT_PREFIX
from ..dataplane.datastore import TransferModes
from ..errors import (
    ChangeTrackingOff,
    CodecUnavailable,
    DatastoreNotFound,
    DestinationExists,
    DiskMismatch,
    NotFoundError,
    PreflightError,
    StraySnapshots,
    VmigrateError,
)
from ..units import fmt_bytes
from . import snapdelta
from .claim import claim_path, claimed_error, describe, own_id, read_claim
from .context import OWNER_MARKER, Migration
from .destination import other_pending, owned_by, read_marker
from .identity import alice_at_dest, identity_checks, registered_where
from .preflight_ahead import Lookahead, files_of
from .preflight_disks import disk_files
from .preflight_model import Check, PreflightContext, PreflightReport
from .preflight_space import SPACE_MARGIN, destination_disks, destination_space, storage
from .progress import CheckReported

CheckFunc = Callable[[Migration, PreflightContext], Iterable[Check]]


def run_preflight(m: Migration, *, raise_on_failure: bool = True) -> PreflightReport:
    """Check everything; raise the first failure (after reporting all).

    Pure: it writes nothing, not even to the workspace (whose journal may belong
    to another migration until the identity check has passed).
    """
    report = PreflightReport()
    ctx = PreflightContext(report)
    try:
        for check in _run_checks(m, ctx):
            report.checks.append(check)
            m.reporter.event(CheckReported(name=check.name, ok=check.ok, detail=check.detail))
    except Exception:
        if ctx.ahead is not None:  # the handles are the caller's again (not after Ctrl-C)
            ctx.ahead.settle()
        raise
    if ctx.ahead is not None:  # e.g. a blocking failure ended the checks early
        ctx.ahead.settle()
    err = report.first_error()
    if err is not None and raise_on_failure:
        raise err
    return report


def _run_checks(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """Every check of :data:`CHECKS` in order, until a failing line that blocks."""
    try:
        for _name, func in CHECKS:
            for check in func(m, ctx):
                yield check
                if check.blocks and not check.ok:
                    return
    except NotFoundError as exc:  # nothing further can be checked without it
        yield Check("found", False, exc.one_line(), exc)


# --- the checks, in the order they run ------------------------------------------------


def source_vm(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """Alice exists and has disks (VmNotFound ends preflight: nothing else can be checked)."""
    vm = ctx.report.vm = m.vm()
    yield Check("source VM", True,
                f"{vm.name} on {vm.host}, {vm.power.value}, {len(vm.disks)} disk(s)")
    if not vm.disks:
        yield Check("disks", False, "the VM has no disks",
                    DiskMismatch(f"VM {vm.name} has no disks"), blocks=True)
    for d in vm.disks:
        yield Check(f"disk {d.key}", True, f"{d.label} {d.ds_path} {fmt_bytes(d.capacity)}")


def open_data_plane(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """Open every datastore handle the checks will use, now, on threads (over SSH each is
    a login and an agent start on its host: all hosts at once, while the control-plane
    checks run), and ask each every question the later checks have
    (:mod:`.preflight_ahead`).  No line: a handle that cannot open is reported by the
    check that needs it."""
    names = list(dict.fromkeys([*(d.datastore for d in ctx.vm.disks), ctx.vm.datastore]))
    dest = False
    with contextlib.suppress(VmigrateError):  # said by the destination datastore check
        dest = m.dest_datastore_name in m.dest.datastores()
    ctx.ahead = Lookahead(m, ctx.vm, names, dest)
    return iter(())


def host_specific(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """What each host's implementation needs: the source to move the VM (vSphere: disk
    types, chain and placement, privileges, SSH, the VM's host), the destination to
    receive it (vSphere: hardware version, SSH, privileges)."""
    for c in [*m.source.migration_checks(ctx.vm), *m.dest.destination_checks(ctx.vm)]:
        yield Check(c.name, c.ok, c.detail, c.error)


def _snapshot_delta(m: Migration, vm: str) -> Check:
    """``snapshot-delta`` needs a host that keeps a snapshot chain (Host capability)."""
    if m.source.keeps_snapshot_chain:
        return Check("change tracking", True, "snapshot-delta: each cycle keeps its snapshot "
                     "and the next copies its frozen delta's grains")
    return Check("change tracking", False, "snapshot-delta: not supported by this host",
                 ChangeTrackingOff(
                     f"source host {m.source.name} cannot keep a snapshot between cycles, "
                     "which sync.change_tracking=snapshot-delta needs",
                     hint="use source type esxi or lab, or sync.change_tracking auto or hash",
                     vm=vm))


def change_tracking(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """CBT on, or allowed to be enabled, or hash-compare accepted."""
    p, vm = m.params, ctx.vm
    mode = p.sync.change_tracking
    off = [d for d in vm.disks if not d.cbt_enabled]
    if mode == "hash":
        yield Check("change tracking", True,
                    "not used: hash-compare every cycle (sync.change_tracking=hash)")
    elif mode == "snapshot-delta":
        yield _snapshot_delta(m, vm.name)
    elif not off:
        yield Check("change tracking", True, "on for every disk")
    elif mode == "require" and not p.sync.allow_enable_cbt:
        yield Check(
            "change tracking", False, f"off for {len(off)} disk(s)",
            ChangeTrackingOff(
                f"change tracking is off on VM {vm.name} and sync.change_tracking=require",
                hint="set sync.allow_enable_cbt=true to let vmigrate enable it "
                "(costs a brief stun), or use change_tracking=auto for hash-compare",
                vm=vm.name,
            ),
        )
    elif p.sync.allow_enable_cbt:
        yield Check("change tracking", True,
                    f"off for {len(off)} disk(s): will be enabled (allowed)")
    else:
        yield Check("change tracking", True,
                    f"off for {len(off)} disk(s): hash-compare will be used")


def snapshots(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """No snapshot but this migration's own leftovers (which the next cycle removes)."""
    vm = ctx.vm
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
        yield Check(
            "snapshots", False, f"other snapshots present: {names}",
            StraySnapshots(
                f"VM {vm.name} has snapshots this migration did not make: {names}{why}",
                vm=vm.name, snapshots=[s.name for s in foreign],
            ),
        )
    elif ours:
        kept = snapdelta.kept_name(m) if claimed is not None else None
        stale = [s for s in ours if s.name != kept]
        said = f"{kept} kept for snapshot-delta" if len(stale) < len(ours) else ""
        if stale:
            said += (", " if said else "") + (f"{len(stale)} leftover snapshot(s) of this "
                                              "migration: the next cycle removes them")
        yield Check("snapshots", True, said)
    else:
        yield Check("snapshots", True, "none")


def source_claim(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """One migration per source VM: another migration's claim is refused and named."""
    vm = ctx.vm
    claim = read_claim(m, vm, ctx.ahead.src_files(vm.datastore) if ctx.ahead is not None
                       else None)
    if claim is not None and claim.get("migration_id") != own_id(m):
        yield Check("source claim", False, f"claimed by {describe(claim)}",
                    claimed_error(m, vm, claim))
    else:
        yield Check("source claim", True, "claimed by this migration" if claim else
                    f"free: the first sync claims it ([{vm.datastore}] {claim_path(vm)})")


def destination_datastore(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """The destination datastore exists (every later check reads it)."""
    p, name = m.params, m.dest_datastore_name
    if name not in m.dest.datastores():
        yield Check(
            "destination datastore", False, f"{name!r} not found on {p.destination.host}",
            DatastoreNotFound(
                f"datastore {name!r} not found on host {p.destination.host}",
                hint=f"available: {', '.join(m.dest.datastores()) or 'none'}",
                datastore=name,
            ),
            blocks=True,
        )
        return
    ctx.dest_ds = ctx.ahead.dst() if ctx.ahead is not None else m.dst_ds()


def transfer_mode(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """The data path each source datastore would use to the destination, when the data
    plane offers a choice (:meth:`Datastore.transfer_modes`); a requested mode that
    cannot work fails here."""
    dst = ctx.ds
    for name in dict.fromkeys(d.datastore for d in ctx.vm.disks):
        modes = (ctx.ahead.transfer_modes(name) if ctx.ahead is not None
                 else m.src_ds(name).transfer_modes(dst))
        if modes is not None:
            yield _mode_line(m, f"[{name}] -> [{dst.name}]", modes)


def _mode_line(m: Migration, where: str, modes: TransferModes) -> Check:
    """One preflight line from what the data plane says about the data paths."""
    wanted, relay, direct = modes.requested, modes.relay, modes.direct
    src_host, dst_host = m.params.source.host, m.params.destination.host
    direct_txt = ("direct not probed" if not direct.probed else
                  f"direct possible: {direct.detail}" if direct.ok
                  else f"direct not possible: {direct.detail}")
    relay_txt = "relay possible" if relay.ok else f"relay not possible: {relay.detail}"
    if wanted == "direct" and not direct.ok:
        return Check("transfer mode", False, f"{where}: direct requested, {direct_txt}",
                     PreflightError(
                         f"direct mode is requested but {src_host} cannot stream to {dst_host} "
                         f"itself: {direct.detail}", hint=modes.direct_hint or None,
                         mode="direct"))
    if not relay.ok and not (wanted != "relay" and direct.ok):
        return Check("transfer mode", False, f"{where}: {wanted} requested, {relay_txt}",
                     PreflightError(f"no data path from {src_host} to {dst_host}: "
                                    f"{relay.detail}", mode=wanted))
    if wanted == "relay":
        return Check("transfer mode", True,
                     f"{where}: relay (requested) through this machine; {direct_txt}")
    if wanted == "direct":
        return Check("transfer mode", True,
                     f"{where}: direct (requested), {direct.detail}; {relay_txt}")
    used = "direct" if direct.ok else "relay"
    return Check("transfer mode", True, f"{where}: auto -> {used}; {direct_txt}; {relay_txt}")


def compression(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """A requested codec that a side lacks fails here (never a silent fallback); else the
    codec each side runs (:meth:`Datastore.compression_check`)."""
    dst = ctx.ds
    for name in dict.fromkeys(d.datastore for d in ctx.vm.disks):
        c = m.src_ds(name).compression_check(dst)
        if c is not None:
            yield Check("compression", c.ok, f"[{name}] -> [{dst.name}]: {c.detail}",
                        None if c.ok else CodecUnavailable(c.detail))


def identity(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """``cutover.identity`` can work here: Bob's name, the source retired or kept
    (:mod:`.identity`)."""
    for c in identity_checks(m, ctx.vm):  # a refusal blocks: Bob's name is not settled
        yield Check(c.name, c.ok, c.detail, c.error, blocks=not c.ok)


def destination_name(m: Migration, ctx: PreflightContext) -> Iterator[Check]:
    """No other VM called Bob, and Bob's folder free or this migration's own."""
    p, ds, folder = m.params, files_of(ctx, ctx.ds), m.dest_folder
    state = m.workspace.current
    mid = state.migration_id if state is not None else None
    marker = read_marker(ds, f"{folder}/{OWNER_MARKER}")
    ctx.ours_at_dest = ds.stat(folder) is not None and owned_by(ds, folder, mid)
    creator = other_pending(ds, folder, mid)
    registered_by_us = state is not None and state.cutover is not None and state.cutover.registered
    # Alice herself under Bob's name (one vCenter): the identity line has judged it
    if m.dest.vm_exists(p.target_name) and not registered_by_us and alice_at_dest(m) is None:
        yield Check(
            "destination name", False,
            f"a VM named {p.target_name} already exists {registered_where(m, p.target_name)}",
            DestinationExists(
                f"a VM named {p.target_name} already exists {registered_where(m, p.target_name)}",
                vm=p.target_name, host=p.destination.host,
            ),
            blocks=True,
        )
        return
    if not ctx.ours_at_dest and (ds.stat(folder) is not None or creator is not None):
        owner = (f" (made by migration {marker.get('migration_id')})" if marker else
                 f" (being made by migration {creator})" if creator else "")
        name = m.dest_datastore_name
        yield Check(
            "destination folder", False, f"[{name}] {folder} already exists{owner}",
            DestinationExists(
                f"the destination folder [{name}] {folder} already exists{owner}",
                hint="choose another dest_name, use the workspace of that migration, "
                "or remove the folder yourself if it is not needed",
                folder=folder, datastore=name,
            ),
            blocks=True,
        )
        return
    yield Check("destination name", True, f"{p.target_name} is free on {p.destination.host}" + (
        " (copy in progress from this workspace)" if ctx.ours_at_dest else ""))


#: Every check, in order.  A check may rely on what the ones before it found (``ctx``).
CHECKS: tuple[tuple[str, CheckFunc], ...] = (
    ("source VM", source_vm),
    ("data plane", open_data_plane),
    ("host specific", host_specific),
    ("change tracking", change_tracking),
    ("snapshots", snapshots),
    ("source claim", source_claim),
    ("disk files", disk_files),
    ("destination datastore", destination_datastore),
    ("transfer mode", transfer_mode),
    ("compression", compression),
    ("storage", storage),
    ("identity", identity),
    ("destination name", destination_name),
    ("destination disks", destination_disks),
    ("destination space", destination_space),
)

__all__ = ["CHECKS", "SPACE_MARGIN", "Check", "CheckFunc", "PreflightContext", "PreflightReport",
           "run_preflight"]
