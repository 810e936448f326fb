"""Keeping a VM on its host for a migration: a per-VM DRS override set to manual.

DRS may vMotion a VM between cycles (a cluster with DRS fully automated); vmigrate
reads its disks through the configured host, so it sets the VM's own DRS behaviour to
``manual`` for the migration (``ClusterConfigSpecEx.drsVmConfigSpec``, applied with
``ReconfigureComputeResource_Task(modify=True)``) and puts back what was there when
the migration ends (cutover done, abandon).  Storage DRS overrides are not set (a
storage vMotion is caught by the per-cycle recheck of the disks' placement).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import HostApiError
from ._vmomi import vim
from .connection import Connection
from .tasks import wait_task

MANUAL = "manual"


def _cluster(vm: Any) -> Any | None:
    host = vm.runtime.host
    parent = host.parent if host is not None else None
    return parent if isinstance(parent, vim.ClusterComputeResource) else None


def _find_cluster(conn: Connection, vm: Any, moid: str) -> Any:
    """The cluster :func:`hold` changed: the VM's own (the override kept it there), else
    the one with that id anywhere in the inventory (public API, no private stub)."""
    here = _cluster(vm)
    if here is not None and here._moId == moid:
        return here
    view = conn.content.viewManager.CreateContainerView(
        conn.content.rootFolder, [vim.ClusterComputeResource], True)
    try:
        found = next((c for c in view.view if c._moId == moid), None)
    finally:
        view.DestroyView()
    if found is None:
        raise HostApiError(f"the cluster ({moid}) that holds the VM's DRS override is gone",
                           hint="set the VM's DRS automation back by hand if it matters",
                           cluster=moid)
    return found


def _override(cluster: Any, vm: Any) -> Any | None:
    return next((c for c in cluster.configurationEx.drsVmConfig or [] if c.key == vm), None)


def _apply(conn: Connection, cluster: Any, spec: Any, timeout: float, what: str) -> None:
    conn.call(lambda: wait_task(cluster.ReconfigureComputeResource_Task(
        spec=vim.cluster.ConfigSpecEx(drsVmConfigSpec=[spec]), modify=True), timeout, what),
        what)


def hold(conn: Connection, vm: Any, timeout: float) -> dict[str, Any] | None:
    """Set ``vm``'s DRS behaviour to manual; returns what to restore (JSON), or None when
    nothing was changed (no cluster, DRS off, or already manual)."""

    def read() -> tuple[Any, Any] | None:
        cluster = _cluster(vm)
        if cluster is None or not cluster.configurationEx.drsConfig.enabled:
            return None
        return cluster, _override(cluster, vm)

    found = conn.call(read, "reading the DRS settings of a VM")
    if found is None:
        return None
    cluster, current = found
    if current is not None and current.behavior == MANUAL and current.enabled is not False:
        return None
    saved = {"cluster": cluster._moId, "vm": vm._moId,
             "override": None if current is None else
             {"enabled": current.enabled, "behavior": str(current.behavior or "")}}
    info = vim.cluster.DrsVmConfigInfo(key=vm, enabled=True, behavior=MANUAL)
    _apply(conn, cluster, vim.cluster.DrsVmConfigSpec(
        operation="add" if current is None else "edit", info=info), timeout,
        "setting the VM's DRS automation to manual")
    return saved


def release(conn: Connection, vm: Any, saved: Mapping[str, Any], timeout: float) -> None:
    """Put back the VM's DRS override as :func:`hold` found it."""
    cluster = conn.call(lambda: _find_cluster(conn, vm, str(saved["cluster"])),
                        "finding the cluster that holds the VM's DRS override")
    before = saved.get("override")
    if before is None:
        spec = vim.cluster.DrsVmConfigSpec(operation="remove", removeKey=vm)
    else:
        spec = vim.cluster.DrsVmConfigSpec(operation="edit", info=vim.cluster.DrsVmConfigInfo(
            key=vm, enabled=before.get("enabled"), behavior=before.get("behavior") or None))
    _apply(conn, cluster, spec, timeout, "restoring the VM's DRS automation")


__all__ = ["MANUAL", "hold", "release"]
