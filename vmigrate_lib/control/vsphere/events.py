"""What was done to a VM that CBT may not show, from vCenter's event history.

``EventManager.QueryEvents`` filtered on the VM (``recursion=self``) since a time
(vSphere API: ``EventFilterSpec``; pyvmomi issue #424 shows the call):

* ``VmReconfiguredEvent`` whose ``configSpec`` changes a virtual disk (an extend:
  KB 2090639, CBT wrong after growing a disk past 128 GB) or change tracking;
  a rename or other setting is not a doubt;
* a ``TaskEvent`` whose task is a revert to a snapshot (writes made after the
  snapshot vanish, which CBT need not report).

A host that answers ``NotImplemented`` (govmomi's simulator in its ESX model;
whether a real standalone ESXi keeps this history is not verified): None, the
host cannot tell.
"""

from __future__ import annotations

import datetime
from typing import Any

from ..host import VmChange
from ._vmomi import vim, vmodl
from .connection import Connection

#: At most this many events are read per query (QueryEvents returns the latest page).
MAX_EVENTS = 1000


def classify(event: Any) -> VmChange | None:
    """One event as a change CBT may have missed, or None."""
    at = event.createdTime.timestamp() if event.createdTime else 0.0
    text = str(getattr(event, "fullFormattedMessage", "") or type(event).__name__)
    if isinstance(event, vim.event.VmReconfiguredEvent):
        spec = event.configSpec
        if spec is None:
            return VmChange("reconfigure", at, text or "reconfigured (no spec recorded)")
        for dc in spec.deviceChange or []:
            if isinstance(dc.device, vim.vm.device.VirtualDisk):
                kind = "extend" if str(dc.operation) == "edit" else "reconfigure"
                return VmChange(kind, at, f"disk {dc.device.key} {dc.operation or 'changed'}")
        if spec.changeTrackingEnabled is not None:
            return VmChange("reconfigure", at, f"changeTrackingEnabled={spec.changeTrackingEnabled}")
        return None
    if isinstance(event, vim.event.TaskEvent) and event.info is not None:
        did = str(event.info.descriptionId or "")
        if "revert" in did.lower():
            return VmChange("revert", at, did)
    return None


def changes_since(conn: Connection, vm: Any, since: float) -> list[VmChange] | None:
    """The VM's changes after ``since`` (epoch seconds), oldest first; None if the host
    keeps no event history it will answer for."""
    begin = datetime.datetime.fromtimestamp(since, tz=datetime.UTC)
    spec = vim.event.EventFilterSpec(
        entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"),
        time=vim.event.EventFilterSpec.ByTime(beginTime=begin), maxCount=MAX_EVENTS)

    def run() -> list[Any] | None:
        try:
            return list(conn.content.eventManager.QueryEvents(spec) or [])
        except vmodl.fault.NotImplemented:
            return None

    events = conn.call(run, f"reading the event history of VM {vm.name}")
    if events is None:
        return None
    found = [c for c in (classify(e) for e in events) if c is not None and c.at > since]
    return sorted(found, key=lambda c: c.at)
