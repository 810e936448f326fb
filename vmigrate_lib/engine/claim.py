"""One migration per source VM: a claim file in Alice's folder on her datastore.

Two workspaces with different ``dest_name``s could otherwise both sync the same
VM and both cut over (two Bobs, each missing the other's last writes).  The
first sync writes ``.vmigrate-claim.json`` beside Alice's ``.vmx`` through the
data plane (so it works on ESXi as in the lab, with no API licence), naming
its migration id, workspace, destination and operator.  Preflight, every
cycle and the cutover's go/no-go refuse while another migration's claim is
there, naming it.  The claim goes when the cutover completes or the operator
abandons the migration (``vmigrate abandon``); a stale claim (its workspace
lost) is removed with ``vmigrate release-claim --migration-id <id>``.

The file starts with a dot: the cutover never copies it to Bob.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from typing import Any

from ..control.host import VmInfo
from ..dataplane.datastore import Datastore, Files
from ..errors import MigrationClaimed, ParameterError, VmigrateError
from .context import Migration

CLAIM_FILE = ".vmigrate-claim.json"


def claim_path(vm: VmInfo) -> str:
    return f"{vm.folder}/{CLAIM_FILE}" if vm.folder else CLAIM_FILE


def _ds(m: Migration, vm: VmInfo) -> Datastore:
    return m.src_ds(vm.datastore)


def read_claim(m: Migration, vm: VmInfo, files: Files | None = None) -> dict[str, Any] | None:
    """The claim on ``vm``, None when there is none; an unreadable one names no migration.
    ``files``: the VM's datastore as preflight peeked it (default: asked now)."""
    ds, path = files or _ds(m, vm), claim_path(vm)
    if ds.stat(path) is None:
        return None
    try:
        data = json.loads(ds.read_file(path))
    except (ValueError, VmigrateError):
        return {"migration_id": "unknown", "damaged": True}
    return data if isinstance(data, dict) else {"migration_id": "unknown", "damaged": True}


def own_id(m: Migration) -> str | None:
    state = m.workspace.current
    return state.migration_id if state is not None else None


def describe(claim: dict[str, Any]) -> str:
    """``migration X (workspace W, to bob on esx-b, by op, since T)``."""
    parts = [f"workspace {claim['workspace']}"] if claim.get("workspace") else []
    if claim.get("dest_name"):
        on = f" on {claim['dest_host']}" if claim.get("dest_host") else ""
        parts.append(f"to {claim['dest_name']}{on}")
    if claim.get("operator"):
        parts.append(f"by {claim['operator']}")
    if claim.get("created"):
        when = datetime.fromtimestamp(float(claim["created"]), UTC)
        parts.append(f"since {when:%Y-%m-%d %H:%M} UTC")
    inner = f" ({', '.join(parts)})" if parts else ""
    return f"migration {claim.get('migration_id', 'unknown')}{inner}"


def claimed_error(m: Migration, vm: VmInfo, claim: dict[str, Any]) -> MigrationClaimed:
    other = str(claim.get("migration_id", "unknown"))
    return MigrationClaimed(
        f"VM {vm.name} is claimed by another vmigrate {describe(claim)}: "
        "one migration per source VM",
        hint=f"finish or abandon that migration from its workspace (vmigrate abandon -p <its "
        f"params>); if it is gone, release its claim: vmigrate release-claim -p <params> "
        f"--migration-id {other}",
        vm=vm.name, migration_id=other, workspace=claim.get("workspace"),
        dest_name=claim.get("dest_name"), claim=f"[{vm.datastore}] {claim_path(vm)}",
    )


def foreign_claim(m: Migration, vm: VmInfo) -> dict[str, Any] | None:
    """Another migration's claim on ``vm`` (pure: for preflight)."""
    claim = read_claim(m, vm)
    if claim is None or claim.get("migration_id") == own_id(m):
        return None
    return claim


def take_claim(m: Migration, vm: VmInfo, files: Files | None = None) -> None:
    """Claim ``vm`` for this migration (idempotent); another migration's claim is refused.
    ``files``: the claim as just peeked (the check after writing it always asks again)."""
    mid = m.workspace.state.migration_id
    claim = read_claim(m, vm, files)
    if claim is not None and claim.get("migration_id") == mid:
        return
    if claim is not None:
        raise claimed_error(m, vm, claim)
    p = m.params
    record = {
        "migration_id": mid, "workspace": str(m.workspace.root), "vm": vm.name,
        "vm_uuid": vm.uuid, "source_host": vm.host, "dest_name": p.target_name,
        "dest_host": p.destination.host, "operator": p.operator,
        "claimed_from": socket.gethostname(), "created": time.time(),
    }
    held = m.source.hold_placement(vm.name)  # DRS: the VM stays on its host (docs/real-hosts.md)
    if held is not None:
        record["placement"] = held  # the claim carries what its release puts back
        m.workspace.journal.append("placement_held", vm=vm.name, saved=held)
    ds = _ds(m, vm)
    ds.write_file(claim_path(vm), json.dumps(record, indent=2).encode(), exclusive=True)
    again = read_claim(m, vm)  # two first syncs at once: the file names one of them
    if again is None or again.get("migration_id") != mid:
        raise claimed_error(m, vm, again or {"migration_id": "unknown"})
    m.workspace.journal.append("source_claimed", vm=vm.name, path=claim_path(vm),
                               datastore=vm.datastore)


def release_claim(m: Migration, vm: VmInfo, migration_id: str, why: str) -> bool:
    """Remove the claim if it names ``migration_id``; returns whether one was removed."""
    claim = read_claim(m, vm)
    if claim is None:
        return False
    if claim.get("migration_id") != migration_id:
        raise ParameterError(
            f"the claim on VM {vm.name} is {describe(claim)}, not migration {migration_id}",
            hint="name the migration id the claim shows (vmigrate preflight prints it)",
            vm=vm.name, migration_id=migration_id,
        )
    held = claim.get("placement")
    if isinstance(held, dict):
        m.source.release_placement(vm.name, held)
        if m.workspace.current is not None:
            m.workspace.journal.append("placement_released", vm=vm.name, saved=held)
    _ds(m, vm).remove(claim_path(vm))
    if m.workspace.current is not None:  # a new migration releasing a stale one has no journal yet
        m.workspace.journal.append("source_claim_released", vm=vm.name,
                                   migration_id=migration_id, reason=why)
    return True


def release_after_cutover(m: Migration, name: str | None = None) -> str | None:
    """The cutover completed: release this migration's claim (on the source VM, called
    ``name`` now if it was renamed).  Returns a warning, never raises."""
    mid = own_id(m)
    try:
        vm = m.source.find_vm(name) if name else m.vm()
        if mid is not None:
            release_claim(m, vm, mid, "cutover done")
    except VmigrateError as exc:
        return (f"the claim on the source VM was not released ({exc.one_line()}): "
                f"remove it with vmigrate release-claim --migration-id {mid}")
    return None
