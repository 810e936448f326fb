"""The embedded wave runner: many VMs, each through its own runbooks, within the limits.

Per VM, in its own thread and its own workspace: the sync runbook (seed, delta cycles
until converged), then warm delta cycles (``vmigrate sync --until-converged``: it also
keeps a whole-disk proof recent for the go/no-go) every ``estimate.interval`` until its
group's window is open and every VM of the groups it comes after is over, then the
cutover runbook.  A VM whose cutover fails is rolled back (the cutover does it itself
before the copy is ready; after failed probes only with ``run.rollback_after_probes``),
and the others go on.  The limits are counted over the VMs in flight (from the sync's
start to the cutover's end).  The state file lets a killed run resume; the journal
records every phase with its time.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..engine.cutover_record import CutoverRecord
from ..engine.workspace import Journal, Workspace
from ..errors import InputError
from .bandwidth import with_cap, write_params
from .model import WavePlan
from .procs import StepResult, vmigrate, wait_workspace_free
from .resume import rolled_back_since, rolled_back_why
from .spec import WaveSpec
from .state import IN_FLIGHT, OVER, VmRun, VmStatus, WaveState, load, save


class WaveRunner:
    def __init__(self, spec: WaveSpec, *, say: Callable[[str], None] = print) -> None:
        self.spec, self.say = spec, say
        self.dir = spec.wave_dir
        self.lock = threading.Lock()
        self.journal = Journal(self.dir / "journal.jsonl")
        self.stop = threading.Event()
        self.state: WaveState | None = None
        self.plan: WavePlan | None = None

    # --- files --------------------------------------------------------------------
    def params_file(self, vm: str) -> Path:
        return self.dir / "params" / f"{vm}.yaml"

    def log(self, vm: str) -> Path:
        return self.dir / "logs" / f"{vm}.log"

    def prepare(self) -> WaveState:
        """The wave folder, its per-VM params files, and the state (new or resumed)."""
        for sub in ("", "params", "logs"):
            (self.dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        digest = hashlib.sha256(self.spec.path.read_bytes()).hexdigest()
        state = load(self.dir / "state.json")
        if state is None:
            state = WaveState(self.spec.name, time.time(), digest,
                              {t.name: VmRun() for t in self.spec.tasks})
            self.journal.append("wave_started", wave=self.spec.name, file=str(self.spec.path),
                                vms=len(self.spec.tasks))
        else:
            for t in self.spec.tasks:
                state.vms.setdefault(t.name, VmRun())
            self.journal.append("wave_resumed", wave=self.spec.name,
                                file_changed=digest != state.file_digest,
                                statuses={k: v.status for k, v in state.vms.items()})
            state.file_digest = digest
        for name, raw in self.spec.vm_params.items():
            write_params(self.params_file(name), raw)
        save(self.dir / "state.json", state)
        return state

    # --- bookkeeping ----------------------------------------------------------------
    def set(self, vm: str, status: VmStatus, **fields: object) -> None:
        """Change a VM's status, save the state and journal it (under the lock)."""
        assert self.state is not None
        task = next(t for t in self.spec.tasks if t.name == vm)
        with self.lock:
            run = self.state.vms[vm]
            run.status = status
            for k, v in fields.items():
                setattr(run, k, v)
            if status in OVER:
                run.ended = time.time()
            save(self.dir / "state.json", self.state)
            self.journal.append("vm_phase", vm=vm, status=status, source=task.source,
                                destination=task.destination, group=task.group,
                                error=run.error or None)
        self.say(f"{vm}: {status}" + (f" ({run.error})" if run.error else ""))

    def can_start(self, vm: str) -> bool:
        assert self.state is not None
        lim = self.spec.limits
        task = next(t for t in self.spec.tasks if t.name == vm)
        flying = [t for t in self.spec.tasks if self.state.vms[t.name].status in IN_FLIGHT]
        return (len(flying) < lim.in_flight
                and sum(t.source == task.source for t in flying) < lim.per_source
                and sum(t.destination == task.destination for t in flying) < lim.per_destination)

    def window_state(self, vm: str) -> str:
        """open | early | closed, and whether the groups it comes after are over."""
        assert self.state is not None and self.plan is not None
        task = next(t for t in self.plan.vms if t.name == vm)
        w = self.plan.group(task.group).window
        now = time.time() - self.state.started_at
        if now >= w.end:
            return "closed"
        deps = all(self.state.vms[d.name].status in OVER for d in self.plan.depends_on(task))
        return "open" if now >= w.start and deps else "early"

    # --- one VM -----------------------------------------------------------------------
    def step(self, vm: str, args: list[str]) -> StepResult:
        if self.spec.limits.enforce_bandwidth:
            self.cap(vm, args)
        self.wait_free(vm, " ".join(args))
        res = vmigrate(args, self.params_file(vm), self.log(vm))
        if res.evidence:
            assert self.state is not None
            with self.lock:
                self.state.vms[vm].evidence.append(res.evidence)
        return res

    def wait_free(self, vm: str, before: str) -> None:
        """Wait until no process holds the VM's workspace (a killed run's kernel may still
        end its cell); journaled when it waited."""
        held_by = wait_workspace_free(Path(self.spec.vm_params[vm]["workspace"]))
        if held_by:
            self.journal.append("workspace_waited", vm=vm, before=before, held_by=held_by)

    def cap(self, vm: str, args: list[str]) -> None:
        """The VM's params file with its data plane's cap (``bwlimit`` on both hosts): its
        pair's share split equally among the VMs in flight on that pair now; journaled."""
        assert self.state is not None
        task = next(t for t in self.spec.tasks if t.name == vm)
        with self.lock:
            copies = sum(t.pair == task.pair and self.state.vms[t.name].status in IN_FLIGHT
                         for t in self.spec.tasks)
        cap = self.spec.limits.cap(task.pair, max(1, copies))
        write_params(self.params_file(vm), with_cap(self.spec.vm_params[vm], cap))
        self.journal.append("vm_bandwidth_cap", vm=vm, pair=str(task.pair), step=" ".join(args),
                            share=self.spec.limits.bandwidth_of(task.pair), copies=copies,
                            bwlimit=cap)

    def drive(self, vm: str) -> None:
        """One VM from where it stands to over; never raises (its failure is its own)."""
        try:
            self._drive(vm)
        except Exception as exc:  # one VM's fault must not stop the wave
            self.set(vm, "failed", error=f"{type(exc).__name__}: {exc}")

    def _drive(self, vm: str) -> None:
        assert self.state is not None
        run = self.state.vms[vm]
        if run.status in ("pending", "syncing") and run.ready is None:
            if run.status != "syncing":
                self.set(vm, "syncing", started=run.started or time.time())
            res = self.retried(vm, ["run", "sync"], lambda: True)
            if not res.ok:
                return self.set(vm, "failed", error=f"sync runbook: {res.last_line}")
            self.set(vm, "warm", ready=time.time())
        if self.state.vms[vm].status in ("syncing", "warm"):
            if not self.keep_warm(vm):
                return None
            self.set(vm, "cutover")
        self.cut_over(vm)
        return None

    def keep_warm(self, vm: str) -> bool:
        """Delta cycles every interval until the window opens; False if it closed first."""
        last = time.time()
        while not self.stop.is_set():
            ws = self.window_state(vm)
            if ws == "open":
                return True
            if ws == "closed":
                self.missed(vm)
                return False
            if time.time() - last >= self.spec.interval:
                res = self.step(vm, ["sync", "--until-converged"])
                last = time.time()
                with self.lock:
                    self.state.vms[vm].warm_cycles += 1  # type: ignore[union-attr]
                if not res.ok:
                    self.say(f"{vm}: warm cycle failed ({res.last_line}); next in "
                             f"{self.spec.interval:.0f} s")
            self.stop.wait(self.spec.run.poll)
        return False

    def missed(self, vm: str) -> None:
        """Its window ended before its cutover could start: nothing is powered off, the
        copy stays synced (warm-able by ``vmigrate sync``) for the next window."""
        self.set(vm, "window_missed", error="window missed: its group's window ended before "
                 "its cutover could start (synced, nothing powered off; run it in the next "
                 "wave)")

    def retried(self, vm: str, args: list[str], again: Callable[[], bool]) -> StepResult:
        """The step, run again (up to ``run.attempts``) while it fails and ``again()`` says
        the failure left nothing to undo; each retry journaled."""
        for attempt in range(1, self.spec.run.attempts + 1):
            res = self.step(vm, args)
            if res.ok or attempt == self.spec.run.attempts or not again():
                return res
            self.journal.append("vm_retry", vm=vm, step=" ".join(args), attempt=attempt,
                                error=res.last_line)
            self.stop.wait(self.spec.run.poll)
        return res

    def cutover_record(self, vm: str) -> CutoverRecord | None:
        state = Workspace(Path(self.spec.vm_params[vm]["workspace"])).load()
        return state.cutover if state is not None else None

    def cutover_status(self, vm: str) -> str | None:
        co = self.cutover_record(vm)
        return co.status if co else None

    def cut_over(self, vm: str) -> None:
        # a killed run's cutover kernel may still hold the workspace and end the cutover
        # while we wait (seen: the resumed run read "running", waited in step(), then ran
        # the runbook, which refused the finished workspace): wait first, then read
        self.wait_free(vm, "cutover")
        co = self.cutover_record(vm)
        if co is not None and co.status == "done":
            # resumed after the cutover ended but before the state said so: the runbook
            # refuses a finished workspace, and the VM is done
            self.journal.append("vm_cutover_already_done", vm=vm, attempt=co.attempt,
                                ended=co.ended, runner="local")
            return self.set(vm, "done", downtime_s=(co.measured or {}).get("downtime_s"),
                            predicted_s=(co.prediction or {}).get("predicted_downtime"))
        assert self.state is not None
        if self.state.vms[vm].status == "cutover" and rolled_back_since(self.journal, vm, co):
            assert co is not None
            self.journal.append("vm_cutover_already_over", vm=vm, attempt=co.attempt,
                                status=co.status, runner="local")
            return self.set(vm, "rolled_back", error=rolled_back_why(vm, co))
        if co is None and self.window_state(vm) == "closed":
            return self.missed(vm)  # resumed after its window: it must not start now
        # a cutover that never started or stopped mid-way resumes from its recorded step
        res = self.retried(vm, ["run", "cutover"],
                           lambda: self.cutover_status(vm) in (None, "running"))
        result = res.run_record().get("result") or {}
        if res.ok:
            return self.set(vm, "done", downtime_s=result.get("downtime_s"),
                            predicted_s=result.get("predicted_downtime_s"))
        after = self.cutover_record(vm)
        if after is not None and after.status == "done":  # (it was not on entry)
            # the cutover ended though this run of it failed (another process's, or after
            # its cutover step): the VM is done, not failed; said as such by the call
            return self.cut_over(vm)
        now = after.status if after is not None else None
        why = f"cutover: {res.last_line}"
        if now == "rolled_back":
            return self.set(vm, "rolled_back", error=why)
        if now in ("probes_failed", "stopped") and self.spec.run.rollback_after_probes:
            rb = self.step(vm, ["rollback", "--yes-lose-bob-writes"])
            return self.set(vm, "rolled_back" if rb.ok else "needs_operator",
                            error=why if rb.ok else f"{why}; rollback: {rb.last_line}")
        if now in ("probes_failed", "stopped", "running", "rolling_back"):
            return self.set(vm, "needs_operator", error=why)
        return self.set(vm, "failed", error=why)  # refused before any change

    # --- the wave ---------------------------------------------------------------------
    def run(self) -> WaveState:
        """Run (or resume) the wave until every VM is over; one wave run at a time."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as lockf:
            try:
                fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise InputError(f"wave {self.spec.name} is already running",
                                 hint="wait for it, or stop that run first") from exc
            self.state = self.prepare()
            self.plan = self.spec.plan(self.state.started_at)
            self._loop()
            self.journal.append("wave_ended", wave=self.spec.name, statuses={
                k: v.status for k, v in self.state.vms.items()})
            return self.state

    def _loop(self) -> None:
        assert self.state is not None and self.plan is not None
        plan, rank = self.plan, self.plan.group_order()
        order = [v.name for _, v in sorted(enumerate(plan.vms), key=lambda iv: (
            rank[iv[1].group], plan.group(iv[1].group).window.start, iv[0]))]
        threads: dict[str, threading.Thread] = {}
        try:
            while True:
                todo = [v for v in order if self.state.vms[v].status not in OVER]
                for v in todo:  # one at a time: each start takes its slot before the next
                    if v in threads:
                        continue
                    if self.state.vms[v].status == "pending":
                        if not self.can_start(v):
                            continue
                        self.set(v, "syncing", started=time.time())  # holds its slot now
                    threads[v] = threading.Thread(target=self.drive, args=(v,), daemon=True)
                    threads[v].start()
                if not todo:
                    break
                time.sleep(self.spec.run.poll)
            for t in threads.values():
                t.join()
        finally:  # interrupted: the children get SIGTERM as this process ends (procs.py)
            self.stop.set()
