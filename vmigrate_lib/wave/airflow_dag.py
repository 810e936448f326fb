"""``vmigrate wave airflow``: the wave as an Apache Airflow DAG file, plus its pools.

The DAG file is self-contained (only Airflow imports and the standard library, the
wave's data embedded as JSON), so the Airflow environment needs nothing of vmigrate:
each VM's runbooks are ``PapermillOperator`` tasks executed by the project's
``vmigrate`` Jupyter kernel (its kernelspec's folder is put on ``JUPYTER_PATH``).

How the model maps (:mod:`.model`), so that a run on Airflow does what ``vmigrate wave
run`` does (its side of each task is :mod:`.airflow_task`, run with the project's Python):

* a VM is ``<vm>.sync`` (its sync runbook, retried like ``run.attempts``), ``<vm>.warm``
  (delta cycles every ``estimate.interval`` until its group's window opens and the
  cutovers of the groups it comes after are over, read through the Task SDK's
  ``get_task_states``) and ``<vm>.cutover`` (its cutover runbook, which does not start
  once the window has ended: the VM is "window missed", synced, nothing powered off;
  after failed probes the VM is rolled back as the local runner does);
* each runbook run is archived and sealed into the VM's workspace as by ``vmigrate run``
  (executed notebook, HTML, journal slice, audit, manifest, signature, read-only), and
  every VM's phases go to the wave's ``state.json`` and journal; ``wave_report`` (after
  every cutover, ``all_done``) executes and seals the wave report over them;
* windows are absolute: the wave's start is ``--start`` or the time the DAG was written;
* the limits are pools.  An Airflow task takes one pool, so each host pair gets a pool
  whose slots are a static split of the limits: per source host the pairs' slots add up
  to at most ``per_source_host``, per destination host to ``per_destination_host``, all
  to at most ``in_flight``.  Every limit then holds whatever runs; the price is slots a
  busy pair cannot borrow from an idle one (the local runner counts exactly).  All three
  tasks of a VM run in its pair's pool.  A pool slot is free between a VM's tasks, so
  the pools alone let a new sync start while a VM waits between its sync and its warm
  task: each pair's VMs are also chained in as many *lanes* as it has slots
  (:mod:`.airflow_slots`), a sync starting once its lane's previous cutover is over.
* ``vmigrate wave airflow`` needs the scheduler: ``airflow dags test`` runs one task
  at a time, so a warm task waiting for another VM's cutover would wait for ever.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..faces.papermill_runner import KERNEL_NAME, absolute_paths, injected, runbooks_dir
from ..faces.runbook_params import check_parameters
from .airflow_slots import lanes, pair_slots
from .model import HostPair
from .spec import WaveSpec

_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def task_id(name: str) -> str:
    """An Airflow id from a VM or host name (letters, digits, _ . -)."""
    return _ID.sub("_", name)


def pool_name(wave: str, pair: HostPair) -> str:
    return task_id(f"vmigrate-{wave}-{pair.source}-to-{pair.destination}")


@dataclass(frozen=True)
class AirflowDag:
    dag_id: str
    dag_file: Path
    pools_file: Path  #: for ``airflow pools import``
    pools: dict[str, int]


def _runbook_params(spec: WaveSpec, vm: str, kind: str) -> dict[str, Any]:
    """What papermill injects for this VM's ``kind`` runbook, paths absolute (checked as
    ``vmigrate run`` checks them)."""
    params = {k: v for k, v in spec.vm_params[vm].items()}
    checked = check_parameters(kind, injected(kind, params), base_dir=spec.path.parent)
    return injected(kind, absolute_paths(params, checked))


def dag_data(spec: WaveSpec, start_at: float, jupyter_path: str) -> dict[str, Any]:
    """Everything the DAG file needs, JSON-ready (each VM's runbook parameters are
    checked here, and given to its task when it starts, with its bandwidth cap)."""
    plan = spec.plan(start_at)
    slots = pair_slots(plan)
    book = runbooks_dir()
    for v in plan.vms:
        for kind in ("sync", "cutover"):
            _runbook_params(spec, v.name, kind)
    rank = plan.group_order()
    lane = lanes(plan, slots)
    vms = [{"vm": v.name, "id": task_id(v.name), "group": v.group,
            "weight": 1 + max(rank.values()) - rank[v.group],  # earlier groups' syncs first
            "pool": pool_name(spec.name, v.pair),
            "lane_after": None if lane[v.name] is None else task_id(str(lane[v.name])),
            "after": sorted({task_id(d.name) for d in plan.depends_on(v)})}
           for v in plan.vms]
    windows = {g.name: [start_at + g.window.start,
                        start_at + g.window.end if math.isfinite(g.window.end) else None]
               for g in plan.groups}
    return {"dag_id": task_id(f"vmigrate_wave_{spec.name}"), "wave": spec.name,
            "start_at": start_at, "kernel": KERNEL_NAME, "jupyter_path": jupyter_path,
            "python": sys.executable, "wave_file": str(spec.path.resolve()),
            "staging": str(spec.wave_dir.resolve() / "airflow-runs"),
            "interval": spec.interval, "poll": max(1.0, spec.run.poll),
            "attempts": spec.run.attempts,
            "runbooks": {k: str(book / f"{k}.ipynb") for k in ("sync", "cutover")},
            "pools": {pool_name(spec.name, p): n for p, n in slots.items()},
            "windows": windows, "vms": vms}


DAG_SOURCE = '''\"\"\"vmigrate wave {wave}: written by `vmigrate wave airflow` (do not edit; write it again).

Each VM: its sync runbook, then warm delta cycles until its group's window opens and the
VMs of the groups it comes after are over, then its cutover runbook (not started once
the window has ended: "window missed"); all three tasks in its host pair's pool, and a
sync waits for the cutover of its lane's previous VM (a pool slot is not held between
tasks; the lanes keep each pair's VMs in flight within its slots).  Every runbook run is archived and sealed as by
`vmigrate run`, through the project's Python (python -m vmigrate_lib.wave.airflow_task).
\"\"\"
import datetime
import json
import os
import subprocess
import time

from airflow.providers.papermill.operators.papermill import PapermillOperator
from airflow.sdk import DAG, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

WAVE = json.loads({data!r})
os.environ["JUPYTER_PATH"] = WAVE["jupyter_path"]  # the vmigrate kernelspec
os.environ["VMIGRATE_HEADLESS"] = "1"  # the runbooks' dashboards render static
OVER = {{"success", "failed", "skipped", "upstream_failed", "removed"}}


def vmigrate(*args):
    \"\"\"One step of vmigrate's side of the task (its last output line is JSON).\"\"\"
    proc = subprocess.run([WAVE["python"], "-m", "vmigrate_lib.wave.airflow_task",
                           WAVE["wave_file"], "--start-at", str(WAVE["start_at"]), *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AirflowException("vmigrate " + args[0] + ": " + (proc.stderr or proc.stdout)[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Runbook(PapermillOperator):
    \"\"\"A VM's runbook: may it start (a cutover not after its window), with its
    parameters (bandwidth cap included); then its run sealed into the VM's workspace.\"\"\"

    def __init__(self, *, vm, kind, **kwargs):
        super().__init__(**kwargs)
        self.vm, self.kind = vm, kind

    def execute(self, context):
        ti = context["ti"]
        go = vmigrate("begin", self.vm, self.kind)
        if go.get("done"):  # an earlier try cut the VM over (its end was lost): not again
            self.log.info("%s: %s; evidence %s", self.kind, go["why"], go["evidence"])
            return (go["evidence"] or [""])[-1]
        if go.get("rolled_back"):  # an earlier try's cutover rolled back (its end was lost)
            raise AirflowFailException(go["why"])
        if not go["go"]:
            raise AirflowSkipException(go["why"])
        run = context["run_id"].replace(":", "").replace("+", "_")
        nb = os.path.join(WAVE["staging"], run, self.vm + "." + self.kind + "." + str(ti.try_number) + ".ipynb")
        os.makedirs(os.path.dirname(nb), mode=0o700, exist_ok=True)
        self.output_nb, self.parameters = nb, go["params"]
        status, error = "ok", ""
        try:
            super().execute(context)
        except Exception as exc:  # sealed as failed, then the task fails
            status = "failed"
            error = ([ln for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__])[-1][:300]
        final = self.kind == "cutover" or ti.try_number > getattr(ti, "max_tries", self.retries)
        out = vmigrate("seal", self.vm, self.kind, nb, "--offset", str(go["offset"]),
                       "--started", str(go["started"]), "--status", status, "--error", error,
                       "--kernel", WAVE["kernel"], "--task", self.task_id,
                       "--run-id", context["run_id"], *(["--final"] if final else []))
        self.log.info("%s: evidence sealed in %s; VM %s", self.kind, out["folder"], out["status"])
        if status != "ok" and out["status"] == "done":  # failed after the cutover was done
            self.log.warning("%s runbook failed after the VM was cut over: %s", self.kind, error)
        elif status != "ok":  # the runbook ran: a sync may run again (it resumes), a cutover not
            fail = AirflowException if self.kind == "sync" and not final else AirflowFailException
            raise fail(self.kind + " runbook failed (" + out["status"] + "): " + error)
        return out["folder"]


class KeepWarm(BaseOperator):
    \"\"\"Delta cycles every interval until the window opens and the earlier groups'
    cutovers are over; ends at once when the window has ended (the cutover then says so).\"\"\"

    def __init__(self, *, vm, group, after, **kwargs):
        super().__init__(**kwargs)
        self.vm, self.group, self.after = vm, group, after

    def deps_over(self, context):
        if not self.after:
            return True
        states = context["ti"].get_task_states(dag_id=self.dag_id, run_ids=[context["run_id"]],
                                               task_ids=[a + ".cutover" for a in self.after])
        got = [st for run in states.values() for st in run.values()]
        return len(got) == len(self.after) and all(st in OVER for st in got)

    def execute(self, context):
        opens, ends = WAVE["windows"][self.group]
        last, cycles = time.time(), 0
        while True:
            now = time.time()
            if ends is not None and now >= ends:
                return "window ended after " + str(cycles) + " warm cycles"
            if now >= opens and self.deps_over(context):
                return "window open after " + str(cycles) + " warm cycles"
            if now - last >= WAVE["interval"]:
                out = vmigrate("warm", self.vm)
                last, cycles = time.time(), cycles + 1
                self.log.info("warm cycle %d: %s", cycles, out)
            time.sleep(WAVE["poll"])


class WaveReport(BaseOperator):
    """The wave report notebook over every VM's sealed evidence, itself sealed."""

    def execute(self, context):
        return vmigrate("report")["folder"]


with DAG(WAVE["dag_id"], schedule=None, catchup=False, max_active_runs=1,
         start_date=datetime.datetime.fromtimestamp(WAVE["start_at"], datetime.timezone.utc),
         tags=["vmigrate", "wave"]) as dag:
    ends, syncs, cutovers = [], {{}}, {{}}
    for vm in WAVE["vms"]:
        # every task is retried when it failed to start (a task start lost under load);
        # a runbook that ran and failed is retried only for a sync (Runbook.execute)
        common = dict(pool=vm["pool"], weight_rule="absolute", retries=WAVE["attempts"] - 1,
                      retry_delay=datetime.timedelta(seconds=5))
        sync = Runbook(task_id=vm["id"] + ".sync", vm=vm["vm"], kind="sync",
                       input_nb=WAVE["runbooks"]["sync"], output_nb="-",
                       kernel_name=WAVE["kernel"], priority_weight=vm["weight"],
                       trigger_rule="all_done", **common)  # after its lane's last VM, however it ended
        warm = KeepWarm(task_id=vm["id"] + ".warm", vm=vm["vm"], group=vm["group"],
                        after=vm["after"], priority_weight=1000, **common)
        cutover = Runbook(task_id=vm["id"] + ".cutover", vm=vm["vm"], kind="cutover",
                          input_nb=WAVE["runbooks"]["cutover"], output_nb="-",
                          kernel_name=WAVE["kernel"], priority_weight=2000, **common)
        sync >> warm >> cutover
        ends.append(cutover)
        syncs[vm["id"]], cutovers[vm["id"]] = sync, cutover
    for vm in WAVE["vms"]:  # the lanes: a VM's sync waits for its lane's previous cutover
        if vm["lane_after"]:
            cutovers[vm["lane_after"]] >> syncs[vm["id"]]
    ends >> WaveReport(task_id="wave_report", trigger_rule="all_done")
'''


def write_dag(spec: WaveSpec, out_dir: Path, start_at: float, jupyter_path: str) -> AirflowDag:
    """Write ``<dag_id>.py`` and ``<dag_id>-pools.json`` into ``out_dir``."""
    data = dag_data(spec, start_at, jupyter_path)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    dag_file = out_dir / f"{data['dag_id']}.py"
    dag_file.write_text(DAG_SOURCE.format(wave=spec.name, data=json.dumps(data, default=str)))
    pools = {name: {"slots": n, "description": f"vmigrate wave {spec.name}: one host pair's "
                    "share of the limits", "include_deferred": False}
             for name, n in data["pools"].items()}
    pools_file = out_dir / f"{data['dag_id']}-pools.json"
    pools_file.write_text(json.dumps(pools, indent=1))
    return AirflowDag(data["dag_id"], dag_file, pools_file, dict(data["pools"]))
