"""The steps of a cutover, each idempotent: run it again and it finishes or does nothing.

Every step reads and writes ``state.cutover`` (the typed record ``co``), saving it
before any action whose effect a crash could hide (``shutdown_requested_at``
before asking the guest, ``registering`` before registering, ``bob_powered_on``
before powering on), so a re-run knows what may have happened.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..control.host import PowerState
from ..errors import (
    CutoverError,
    CutoverNoGo,
    PowerError,
    ProbeFailed,
    ToolsUnavailable,
    VmigrateError,
)
from ..modes import CertifyMode, ReadyMode
from ..params import CutoverParams
from ..units import fmt_secs
from .claim import take_claim
from .context import OWNER_MARKER, Migration
from .converge import journal_plan
from .cutover_checks import full_certify_reason, readiness
from .cycle import run_cycle
from .identity import name_goes_at_cutover, registered_where
from .planner import DEFAULT_BOOT_S, DEFAULT_SHUTDOWN_S, Plan
from .probes import run_probes
from .progress import PhaseReached, WarningRaised
from .state import CutoverRecord

#: Bigger files are not "small config files": they are skipped and said so.
MAX_SMALL_FILE = 64 << 20


@dataclass(frozen=True)
class CutoverOptions:
    """The operator's choices for one cutover: the params file's ``cutover`` section
    with the run's CLI flags or runbook ``force`` on top (see :meth:`from_params`)."""

    budget: float | None = None  #: seconds; None = params.downtime_budget
    force: bool = False  #: go even if go/no-go says no (recorded as forced)
    max_sync_age: float = 600.0  #: the last sync must be at most this old, seconds
    shutdown_timeout: float = 300.0
    allow_hard_poweroff: bool = False
    certify: CertifyMode = "changed"  #: none | changed | full, on the final delta
    network_map: Mapping[str, str] = field(default_factory=dict)
    probes: tuple[int, ...] = ()  #: TCP ports on the new VM that must accept a connection
    probe_command: str | None = None
    probe_host: str | None = None  #: address to probe; None = the VM's reported IP
    probe_timeout: float = 60.0
    ready_timeout: float = 600.0
    ready: ReadyMode = "auto"  #: auto | tools | power-and-probes (how Bob counts as ready)
    rollback_grace: float = 60.0  #: Bob ran longer: a failure stops, never rolls back itself
    full_certify_within: int = 3  #: go/no-go: a whole-disk proof in the last N cycles (0: off)
    shutdown_s: float | None = DEFAULT_SHUTDOWN_S  #: planner: until a cutover measured it
    boot_s: float | None = DEFAULT_BOOT_S
    throughput_override: float | None = None

    @classmethod
    def from_params(cls, params: CutoverParams, **overrides: Any) -> CutoverOptions:
        """The file's ``cutover`` section, then each override that is not None on top.

        ``network_map`` overrides are merged onto the file's map (entry by entry);
        every other override replaces the file's value.  ``force``, ``budget`` and
        the planner estimates exist only as overrides (per run).
        """
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown cutover option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {
            "max_sync_age": params.max_sync_age, "shutdown_timeout": params.shutdown_timeout,
            "allow_hard_poweroff": params.allow_hard_poweroff, "certify": params.certify,
            "network_map": dict(params.network_map), "probes": tuple(params.probes),
            "probe_command": params.probe_command or None,
            "probe_host": params.probe_host or None, "probe_timeout": params.probe_timeout,
            "ready_timeout": params.ready_timeout, "ready": params.ready,
            "rollback_grace": params.rollback_grace,
            "full_certify_within": params.full_certify_within,
            "shutdown_s": params.expected_shutdown, "boot_s": params.expected_boot,
        }
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "network_map":
                value = {**values["network_map"], **dict(value)}
            elif key == "probes":
                value = tuple(value)
            values[key] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["network_map"] = dict(self.network_map)
        d["probes"] = list(self.probes)
        return d


@dataclass
class StepContext:
    m: Migration
    opts: CutoverOptions
    co: CutoverRecord

    @property
    def alice(self) -> str:
        return self.m.params.vm

    @property
    def bob(self) -> str:
        return self.m.params.target_name

    @property
    def budget(self) -> float:
        return self.opts.budget if self.opts.budget is not None else self.m.params.downtime_budget

    @property
    def alice_now(self) -> str:
        """Alice's name on the source host now: her retired name from the retire step
        until a rollback restores it (``cutover.identity: retire-source``)."""
        r = self.co.retire
        return str(r["new_name"]) if r and r.get("state") == "retired" else self.alice

    @property
    def ready_mode(self) -> str:
        """How Bob (and Alice on a rollback) counts as ready: decided at go/no-go."""
        return str((self.co.go or {}).get("ready") or "tools")

    def bob_ran_for(self) -> float | None:
        """Seconds since Bob was powered on by this attempt (None: never)."""
        at = self.co.bob_powered_on_at
        return None if at is None or not self.co.bob_powered_on else time.time() - at

    def bob_may_have_served(self) -> bool:
        """Bob was ready, or has run past the grace period: he may have taken writes."""
        ran = self.bob_ran_for()
        return bool(self.co.bob_ready_at) or (ran is not None and ran > self.opts.rollback_grace)

    def save(self) -> None:
        self.m.workspace.save()

    def note(self, text: str) -> None:
        self.co.warnings.append(text)
        self.m.workspace.journal.append("warning", attempt=self.co.attempt, message=text)
        self.m.reporter.event(WarningRaised(message=text))


def current_plan(m: Migration, opts: CutoverOptions, budget: float) -> Plan:
    """The planner's view of a cutover now, with measured timings from the journal."""
    return journal_plan(m.workspace.journal, budget=budget, shutdown_s=opts.shutdown_s,
                        boot_s=opts.boot_s, throughput_override=opts.throughput_override,
                        certify=opts.certify)


def bob_is_ours(c: StepContext) -> bool:
    """Is the VM registered at the destination under Bob's name the one in our folder?"""
    m = c.m
    if not m.dest.vm_exists(c.bob):
        return False
    info = m.dest.find_vm(c.bob)
    return info.folder == m.dest_folder and info.datastore == m.dest_datastore_name


# --- steps -------------------------------------------------------------------------


def go_no_go(c: StepContext) -> None:
    """Predicted downtime within budget, last sync recent, destination free, copy trusted."""
    m, state = c.m, c.m.workspace.state
    p = current_plan(m, c.opts, c.budget)
    c.co.prediction = p.to_dict()
    reasons: list[str] = []
    if not state.seeded:
        raise CutoverNoGo("nothing has been synced yet", hint="run vmigrate sync first")
    if not p.converged:
        reasons.append(f"predicted downtime {fmt_secs(p.predicted_downtime)} exceeds the "
                       f"{fmt_secs(c.budget)} budget ({p.advice})")
    age = time.time() - (state.last_snapshot_at or 0.0)
    c.co.sync_age = age
    if age > c.opts.max_sync_age:
        reasons.append(f"the last sync is {fmt_secs(age)} old (at most "
                       f"{fmt_secs(c.opts.max_sync_age)} allowed)")
    untrusted = {str(k): d.untrusted for k, d in state.disks.items()
                 if d.untrusted and d.removed is None}  # removed: not Bob's disk
    if untrusted:
        reasons.append(f"the copy of disk(s) {', '.join(untrusted)} is not proven: "
                       + "; ".join(untrusted.values()))
    if m.dest.vm_exists(c.bob) and not (c.co.registered and bob_is_ours(c)) \
            and not name_goes_at_cutover(m):  # retire-source: Alice's own, freed at cutover
        raise CutoverNoGo(f"a VM named {c.bob} is already registered {registered_where(m, c.bob)}",
                          hint="the destination must be free; remove that VM or choose dest_name",
                          vm=c.bob)
    vm = m.vm()
    ready = readiness(vm, c.opts, reasons)  # raises when Alice cannot be stopped as asked
    proof = full_certify_reason(m, c.opts.full_certify_within, reasons)
    take_claim(m, vm)  # one migration per source VM: another's claim is a no-go (claim.py)
    c.co.go = {"reasons": reasons, "forced": bool(reasons) and c.opts.force, **ready, **proof}
    m.workspace.journal.append("go_decision", attempt=c.co.attempt, **c.co.go)
    m.reporter.event(PhaseReached(phase="go/no-go", detail=p.summary()))
    if reasons and not c.opts.force:
        raise CutoverNoGo("no-go: " + "; ".join(reasons), reasons=reasons,
                          predicted_downtime=p.predicted_downtime, budget=c.budget)
    if reasons:
        c.note("go/no-go overridden by --force: " + "; ".join(reasons))


def shutdown(c: StepContext) -> None:
    """Graceful guest shutdown, timed; hard power-off only if allowed; confirm off."""
    m, src, vm = c.m, c.m.source, c.alice
    if c.co.shutdown_requested_at is None:
        c.co.shutdown_requested_at = time.time()
        c.save()
    why = f"did not shut down within {fmt_secs(c.opts.shutdown_timeout)}"
    if src.power_state(vm) != PowerState.OFF:
        m.reporter.event(PhaseReached(phase="shutdown", detail=f"asking {vm}'s guest to shut down"))
        try:
            src.shutdown_guest(vm)
            src.wait_powered_off(vm, c.opts.shutdown_timeout)  # the host polls as it can afford
        except ToolsUnavailable as exc:  # nobody to ask: waiting would change nothing
            why = f"has no VMware Tools running ({exc.message})"
        except PowerError:
            if src.power_state(vm) == PowerState.ON:  # else it went off in between: fine
                raise
    if src.power_state(vm) != PowerState.OFF:
        if not c.opts.allow_hard_poweroff:
            raise CutoverError(f"{vm} {why}",
                               hint="raise --shutdown-timeout, or allow --allow-hard-poweroff",
                               step="shutdown", vm=vm)
        c.note(f"{vm} {why}: hard power-off (allowed by the operator)")
        c.co.hard_poweroff = True
        c.save()
        src.power_off(vm)
    if src.power_state(vm) != PowerState.OFF:
        raise CutoverError(f"{vm} is still powered on after power-off", step="shutdown", vm=vm)
    c.co.alice_off_at = time.time()


def final_sync(c: StepContext) -> None:
    """The last delta, with Alice stopped (certified as the operator chose)."""
    m, state = c.m, c.m.workspace.state
    if m.source.power_state(c.alice) != PowerState.OFF:
        raise CutoverError(f"{c.alice} is powered on: the final sync needs her stopped",
                           step="final_sync")
    if c.co.cycles_before_final is None:
        c.co.cycles_before_final = state.cycles
    before = c.co.cycles_before_final
    c.save()
    if state.cycles > before and state.last_cycle_kind == "final":
        rec = next((r for r in m.workspace.journal.records("cycle")
                    if r.get("number") == state.cycles), {})
    else:
        rec = run_cycle(m, kind="final", certify=c.opts.certify).record
    c.co.final_cycle = {"number": rec.get("number", state.cycles),
                           "bytes_changed": rec.get("bytes_changed"),
                           "duration": rec.get("duration"),
                           "certify": rec.get("certify")}


def certify(c: StepContext) -> None:
    """The final cycle certified what the operator asked; prove it is recorded as identical."""
    if c.opts.certify == "none":
        c.co.certify = "skipped"
        return
    result = ((c.co.final_cycle or {}).get("certify") or {}).get("result")
    if result != "identical":
        rec = run_cycle(c.m, kind="final", certify="full").record  # raises on a mismatch
        result = (rec.get("certify") or {}).get("result")
    c.co.certify = result


def copy_files(c: StepContext) -> None:
    """Copy Alice's small non-disk files into Bob's folder, as the destination host makes
    them (:meth:`Host.prepare_config_files`: e.g. a .vmx and disk descriptors rewritten
    to name Bob's files).  Never the source host's runtime state
    (:meth:`Host.is_runtime_file`): disks travel by sync, the rest is the host's."""
    m = c.m
    vm = m.vm()
    src = m.src_ds(vm.datastore)
    dst = m.dst_ds()
    renames = {posixpath.basename(d.path): posixpath.basename(m.dest_disk_path(d))
               for d in vm.disks}
    files: dict[str, bytes] = {}
    skipped = []
    for name in src.listdir(vm.folder):
        path = f"{vm.folder}/{name}"
        if name in renames or name.startswith(".") or m.source.is_runtime_file(name) \
                or name == OWNER_MARKER:
            continue
        st = src.stat(path)
        if st is None or st.is_dir:
            continue
        if st.size > MAX_SMALL_FILE:
            skipped.append(name)
            continue
        renames[name] = c.bob + name[len(c.alice):] \
            if c.bob != c.alice and name.startswith(c.alice) else name
        files[name] = src.read_file(path)
    out = m.dest.prepare_config_files(c.bob, vm, files, renames)
    for target, data in out.items():
        dst.write_file(f"{m.dest_folder}/{target}", data)
    c.co.files_copied = list(out)
    if skipped:
        c.note(f"not copied (larger than {MAX_SMALL_FILE >> 20} MiB): {', '.join(skipped)}")
    for text in m.dest.take_notes():  # e.g. an ISO Bob cannot reach, set not to connect
        c.note(text)


def register(c: StepContext) -> None:
    """Register Bob on B from the files in his folder (idempotent on the host)."""
    m = c.m
    c.co.register_started_at = c.co.register_started_at or time.time()
    c.co.registering = True
    c.save()
    info = m.dest.register_vm(c.bob, m.dest_datastore_name, m.dest_folder,
                              m.source.find_vm(c.alice_now),
                              network_map=dict(c.opts.network_map) or None)
    c.co.registered = True
    c.co.bob_uuid = info.uuid


def power_on(c: StepContext) -> None:
    """Power Bob on, after proving Alice is off: never two copies running."""
    m = c.m
    if m.source.power_state(c.alice_now) != PowerState.OFF:
        raise CutoverError(f"{c.alice_now} is powered on: refusing to power on {c.bob}",
                           step="power_on")
    c.co.bob_powered_on = True
    c.co.bob_powered_on_at = c.co.bob_powered_on_at or time.time()
    c.save()
    try:
        m.dest.power_on(c.bob)
    finally:
        for text in m.dest.take_notes():  # e.g. a power-on question the host answered
            c.note(text)


def wait_ready(c: StepContext) -> None:
    """Until Bob is ready (lab: his boot check verified every acknowledged block): by
    VMware Tools, or powered on when go/no-go chose ``power-and-probes`` (the probes
    then decide)."""
    if c.ready_mode == "power-and-probes":
        info = c.m.dest.wait_running(c.bob, c.opts.ready_timeout)
    else:
        info = c.m.dest.wait_ready(c.bob, c.opts.ready_timeout)
    c.co.bob_ready_at = time.time()
    c.co.bob_ip = info.guest_ip


def probes(c: StepContext) -> None:
    """TCP ports and the optional command; failure leaves Bob running for the operator."""
    if not c.opts.probes and not c.opts.probe_command:
        c.co.probes = []
        return
    host = c.opts.probe_host or c.co.bob_ip
    env = {"VMIGRATE_VM": c.bob, "VMIGRATE_VM_IP": str(host or "")}
    results = run_probes(host, c.opts.probes, c.opts.probe_command, env=env,
                         deadline_s=c.opts.probe_timeout)
    c.co.probes = [r.to_dict() for r in results]
    bad = [r for r in results if not r.ok]
    if bad:
        raise ProbeFailed(
            f"{c.bob} is running but {len(bad)} probe(s) failed: "
            + "; ".join(f"{r.name} {r.detail}" for r in bad),
            step="probes", probes=[r.to_dict() for r in bad])


def describe(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, VmigrateError):
        return exc.to_dict()
    return {"error": type(exc).__name__, "message": str(exc)}
