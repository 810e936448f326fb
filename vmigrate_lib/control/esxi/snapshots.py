"""The esxi host's snapshots through vim-cmd: list, create, remove, and the chain kept
by ``sync.change_tracking: snapshot-delta`` (a new snapshot over vmigrate's own, the
frozen delta of an older one read from ``get.filelayout``).

A mixin of :class:`~.host.EsxiHost`, apart so that each module stays small; it uses
the host's vmid lookup, its config reader and its disk chains.
"""

from __future__ import annotations

import re

from ...errors import DiskChainError, SnapshotError
from ..host import VMIGRATE_SNAPSHOT_PREFIX, DiskInfo, SnapshotInfo
from . import vimcmd
from .shell import EsxiShell, check_word

#: a snapshot delta's descriptor: ``alice-000001.vmdk`` (vSphere's naming)
DELTA = re.compile(r"-\d{6}\.vmdk$")


class EsxiSnapshots:
    """Snapshot methods of :class:`~.host.EsxiHost` (which provides the stubs below)."""

    shell: EsxiShell
    snapshot_remove_timeout: float

    def vmid(self, name: str) -> int:
        raise NotImplementedError

    def _config(self, vmid: int) -> tuple[str, str, str, tuple[DiskInfo, ...]]:
        raise NotImplementedError

    def disk_chains(self, vm: str) -> dict[int, list[str]]:
        raise NotImplementedError

    # --- snapshots ------------------------------------------------------------------
    def _snapshots(self, vmid: int) -> list[vimcmd.SnapshotRow]:
        r = self.shell.vim_cmd("vmsvc/snapshot.get", str(vmid))
        return vimcmd.parse_snapshots(r.stdout, vmid)

    def list_snapshots(self, vm: str) -> list[SnapshotInfo]:
        return [SnapshotInfo(id=str(s.id), name=s.name, created=s.created,
                             description=s.description)
                for s in self._snapshots(self.vmid(vm))]

    def create_snapshot(self, vm: str, name: str, description: str = "",
                        quiesce: bool = False) -> SnapshotInfo:
        """Without memory; refused, changing nothing, while any snapshot exists (the
        frozen base would then be a delta).  Read back with ``snapshot.get``."""
        vmid = self.vmid(vm)
        if self._snapshots(vmid):
            raise SnapshotError(f"VM {vm} already has snapshots: vmigrate reads the base disk "
                                "and needs it frozen by its own snapshot alone", vm=vm)
        return self._create(vmid, vm, name, description, quiesce)

    def _create(self, vmid: int, vm: str, name: str, description: str,
                quiesce: bool) -> SnapshotInfo:
        disks = self._config(vmid)[3]
        self.shell.vim_cmd("vmsvc/snapshot.create", str(vmid), check_word(name, "snapshot name"),
                           check_word(description, "snapshot description"), "0",
                           "1" if quiesce else "0")
        made = [s for s in self._snapshots(vmid) if s.name == name]
        if len(made) != 1:
            raise SnapshotError(f"snapshot {name!r} of {vm} is not on the host after "
                                "vim-cmd vmsvc/snapshot.create", vm=vm, snapshot=name)
        s = made[0]
        return SnapshotInfo(id=str(s.id), name=s.name, created=s.created,
                            description=s.description,
                            disk_paths={d.key: d.path for d in disks})

    keeps_snapshot_chain = True

    def create_snapshot_on_top(self, vm: str, name: str, description: str = "") -> SnapshotInfo:
        """``snapshot.create`` over vmigrate's own snapshots (a child of the newest: the
        delta below is frozen); refused, changing nothing, beside anyone else's or on a
        branched tree (the delta would not be the last cycle's writes)."""
        vmid = self.vmid(vm)
        snaps = self._snapshots(vmid)
        others = [s.name for s in snaps if not s.name.startswith(VMIGRATE_SNAPSHOT_PREFIX)]
        if others or any(s.level != i for i, s in enumerate(snaps)):
            raise SnapshotError(f"VM {vm} has snapshots vmigrate did not make, or a branched "
                                f"tree: {', '.join(s.name for s in snaps)}", vm=vm,
                                hint="remove them on the host, then run again")
        return self._create(vmid, vm, name, description, False)

    def snapshot_deltas(self, vm: str, snapshot_id: str) -> dict[int, str]:
        """From ``get.filelayout``: snapshot ``i`` of a linear tree (root first) wrote
        each disk's chain file ``i + 1`` (the base descriptor is file 0)."""
        vmid = self.vmid(vm)
        ids = [str(s.id) for s in self._snapshots(vmid)]
        if snapshot_id not in ids:
            raise SnapshotError(f"no snapshot {snapshot_id} on VM {vm}", vm=vm,
                                snapshot_id=snapshot_id)
        i = ids.index(snapshot_id) + 1
        out: dict[int, str] = {}
        for key, chain in self.disk_chains(vm).items():
            if len(chain) != len(ids) + 1 or not DELTA.search(chain[i]):
                raise DiskChainError(f"VM {vm} disk {key}: {len(chain)} chain file(s) for "
                                     f"{len(ids)} snapshot(s): {', '.join(chain)}", vm=vm,
                                     hint="consolidate the VM's disks on the host, then run "
                                     "again")
            out[key] = chain[i]
        return out

    def remove_snapshot(self, vm: str, snapshot_id: str, timeout: float | None = None) -> None:
        """Remove and consolidate; one already gone counts as removed (re-runs)."""
        vmid = self.vmid(vm)
        if not any(str(s.id) == snapshot_id for s in self._snapshots(vmid)):
            return
        wait = self.snapshot_remove_timeout if timeout is None else timeout
        self.shell.vim_cmd("vmsvc/snapshot.remove", str(vmid), check_word(snapshot_id),
                           timeout=wait)
        if any(str(s.id) == snapshot_id for s in self._snapshots(vmid)):
            raise SnapshotError(f"snapshot {snapshot_id} of {vm} is still there after "
                                "vim-cmd vmsvc/snapshot.remove", vm=vm, snapshot_id=snapshot_id)

