"""Two go/no-go checks that protect what CBT and VMware Tools cannot promise.

* **Readiness** (issue 11 item 3): a guest without VMware Tools cannot be asked to
  shut down (``ShutdownGuest`` faults ``ToolsUnavailable``) and never reports
  Tools, an IP or a heartbeat.  Go/no-go reads Alice's Tools state before anything
  stops: without Tools the cutover needs a hard power-off the operator allowed,
  and Bob counts as ready once powered on, the probes deciding.
* **A late whole-disk proof** (item 8): a cycle certifies what CBT reported, so a
  change CBT missed (VMware KB 2090639, KB 2136854, a revert) would be certified
  "identical".  Go/no-go wants a cycle within the last N that proved whole disks
  (certify full, or every disk hash-compared), run while Alice was running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..control.host import PowerState, VmInfo
from ..errors import CutoverNoGo
from .context import Migration

if TYPE_CHECKING:
    from .cutover_steps import CutoverOptions

#: Disk modes that digest every block on both sides (the seed copies and certifies all).
WHOLE_DISK_MODES = ("hash", "full")


def readiness(vm: VmInfo, opts: CutoverOptions, reasons: list[str]) -> dict[str, Any]:
    """The readiness mode for this attempt (journaled in the go decision); refuses a
    graceful shutdown nobody can answer."""
    running = vm.power == PowerState.ON
    tools = vm.tools_running
    if running and not tools and not opts.allow_hard_poweroff:
        raise CutoverNoGo(
            f"{vm.name} has no VMware Tools running: a graceful shutdown cannot be asked "
            "(ShutdownGuest would fail) and nothing was stopped",
            hint="start VMware Tools in the guest, or allow a hard power-off "
            "(cutover.allow_hard_poweroff / --allow-hard-poweroff)", vm=vm.name)
    mode = opts.ready
    if mode == "auto":
        mode = "tools" if tools or not running else "power-and-probes"
    if mode == "tools" and running and not tools:
        reasons.append(f"cutover.ready is tools but {vm.name} runs no VMware Tools: the copy "
                       "would never count as ready (use ready: power-and-probes or auto)")
    if mode == "power-and-probes" and not opts.probes and not opts.probe_command:
        reasons.append("without VMware Tools only the probes can tell the copy works: set "
                       "cutover.probes with cutover.probe_host, or cutover.probe_command")
    return {"ready": mode, "ready_asked": opts.ready, "alice_tools": tools}


def last_whole_disk_proof(m: Migration) -> int | None:
    """The number of the last cycle that proved whole disks identical: certified in
    full, or every disk hash-compared (or seeded) and no certify mismatch."""
    best: int | None = None
    for r in m.workspace.journal.records("cycle"):
        cert = r.get("certify") or {}
        modes = {d.get("mode") for d in r.get("disks") or []}
        full = cert.get("mode") == "full" and cert.get("result") == "identical"
        hashed = bool(modes) and modes <= set(WHOLE_DISK_MODES) \
            and cert.get("result") in ("identical", "skipped")
        if (full or hashed) and isinstance(r.get("number"), int):
            best = max(best or 0, int(r["number"]))
    return best


def cycles_since(m: Migration, last: int) -> int:
    """Cycles after ``last``, not counting a cutover's own pre-shutdown delta (predelta):
    a go/no-go taken again on a resume finds the proof as the first one did."""
    own = {r.get("cycle") for r in m.workspace.journal.records("predelta") if r.get("ran")}
    return sum(1 for n in range(last + 1, m.workspace.state.cycles + 1) if n not in own)


def proof_is_stale(m: Migration, within: int) -> bool:
    """Would go/no-go say "no whole-disk certify in the last ``within`` cycles" now?"""
    last = last_whole_disk_proof(m)
    return within > 0 and (last is None or cycles_since(m, last) >= within)


def full_certify_reason(m: Migration, within: int, reasons: list[str]) -> dict[str, Any]:
    """Adds a no-go reason when no cycle among the last ``within`` proved whole disks."""
    last = last_whole_disk_proof(m)
    since = None if last is None else cycles_since(m, last)
    if proof_is_stale(m, within):
        told = "never" if last is None else f"last in cycle {last}, {since} cycles ago"
        reasons.append(f"no whole-disk certify in the last {within} cycle(s) ({told}): change "
                       "tracking may have missed writes; run vmigrate certify while the VM runs")
    return {"full_certify_cycle": last, "full_certify_age": since,
            "full_certify_within": within}
