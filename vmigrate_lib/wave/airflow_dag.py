"""``vmigrate wave airflow``: the wave as an Apache Airflow DAG file, plus its pools.

The DAG file is self-contained (only Airflow imports and the standard library, the
wave's data embedded as JSON), so the Airflow environment needs nothing of vmigrate:
each VM's runbooks are ``PapermillOperator`` tasks executed by the project's
``vmigrate`` Jupyter kernel (its kernelspec's folder is put on ``JUPYTER_PATH``).

How the model maps (:mod:`.model`):

* a VM is ``<vm>.sync`` then ``<vm>.cutover`` (its two runbooks), the executed notebook
  written into the VM's workspace (``evidence/airflow-<run id>-<kind>/<kind>.ipynb``;
  a triggered run has no logical date, so the run id names it);
* a group's window is a ``DateTimeSensor`` before its cutovers (windows are absolute:
  the wave's start is ``--start`` or the time the DAG was written);
* ``after`` is an edge from every cutover of the earlier group to every cutover of the
  later (``all_done``: one VM's failure does not hold the others, as the local runner);
* the limits are pools.  An Airflow task takes one pool, so each host pair gets a pool
  whose slots are a static split of the limits: per source host the pairs' slots add up
  to at most ``per_source_host``, per destination host to ``per_destination_host``, all
  to at most ``in_flight``.  Every limit then holds whatever runs; the price is slots a
  busy pair cannot borrow from an idle one (the local runner counts exactly).  A VM holds
  its slot while one of its runbooks runs, not while it waits for its window.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WaveFileError
from ..faces.papermill_runner import KERNEL_NAME, absolute_paths, injected, runbooks_dir
from ..faces.runbook_params import check_parameters
from .model import HostPair, Limits, WavePlan
from .spec import WaveSpec

_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def task_id(name: str) -> str:
    """An Airflow id from a VM or host name (letters, digits, _ . -)."""
    return _ID.sub("_", name)


def pool_name(wave: str, pair: HostPair) -> str:
    return task_id(f"vmigrate-{wave}-{pair.source}-to-{pair.destination}")


def pair_slots(plan: WavePlan) -> dict[HostPair, int]:
    """Slots per host pair: one each, then more to the pair with the most VMs per slot
    while every limit still holds; raise when even one slot per pair breaks a limit."""
    lim: Limits = plan.limits
    vms = Counter(v.pair for v in plan.vms)
    slots = dict.fromkeys(sorted(vms, key=str), 1)

    def fits(s: dict[HostPair, int]) -> bool:
        src, dst = Counter[str](), Counter[str]()
        for p, n in s.items():
            src[p.source] += n
            dst[p.destination] += n
        return (sum(s.values()) <= lim.in_flight and max(src.values()) <= lim.per_source
                and max(dst.values()) <= lim.per_destination)

    if not fits(slots):
        raise WaveFileError(
            f"the limits leave no slot for each of the {len(slots)} host pairs "
            f"(in_flight {lim.in_flight}, per source host {lim.per_source}, per destination "
            f"host {lim.per_destination}); an Airflow task takes one pool, one per pair",
            hint="raise the limits or split the wave so fewer pairs share a host")
    while True:
        room = [p for p in slots if slots[p] < vms[p] and fits({**slots, p: slots[p] + 1})]
        if not room:
            return slots
        best = max(room, key=lambda p: (vms[p] / slots[p], str(p)))
        slots[best] += 1


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
    """Everything the DAG file needs, JSON-ready."""
    plan = spec.plan(start_at)
    slots = pair_slots(plan)
    book = runbooks_dir()
    vms = [{"vm": v.name, "id": task_id(v.name), "group": v.group,
            "pool": pool_name(spec.name, v.pair),
            "workspace": str(spec.vm_params[v.name]["workspace"]),
            "after": sorted({task_id(d.name) for d in plan.depends_on(v)}),
            "params": {k: _runbook_params(spec, v.name, k) for k in ("sync", "cutover")}}
           for v in plan.vms]
    windows = {task_id(g.name): start_at + g.window.start for g in plan.groups}
    return {"dag_id": task_id(f"vmigrate_wave_{spec.name}"), "wave": spec.name,
            "start_at": start_at, "kernel": KERNEL_NAME, "jupyter_path": jupyter_path,
            "runbooks": {k: str(book / f"{k}.ipynb") for k in ("sync", "cutover")},
            "pools": {pool_name(spec.name, p): n for p, n in slots.items()},
            "windows": windows, "vms": vms}


DAG_SOURCE = '''"""vmigrate wave {wave}: written by `vmigrate wave airflow` (do not edit; write it again).

Each VM: its sync runbook, then (after its group's window opened and the groups it comes
after are over) its cutover runbook, both PapermillOperator tasks in its host pair's pool.
"""
import datetime
import json
import os

from airflow.providers.papermill.operators.papermill import PapermillOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensor
from airflow.sdk import DAG

WAVE = json.loads({data!r})
os.environ["JUPYTER_PATH"] = WAVE["jupyter_path"]  # the vmigrate kernelspec
os.environ["VMIGRATE_HEADLESS"] = "1"  # the runbooks' dashboards render static


class Runbook(PapermillOperator):
    """A runbook run into the VM's workspace (its evidence folder made private first)."""

    def execute(self, context):
        os.makedirs(os.path.dirname(self.output_nb), mode=0o700, exist_ok=True)
        return super().execute(context)


with DAG(WAVE["dag_id"], schedule=None, catchup=False, max_active_runs=1,
         start_date=datetime.datetime.fromtimestamp(WAVE["start_at"], datetime.timezone.utc),
         tags=["vmigrate", "wave"]) as dag:
    windows = {{g: DateTimeSensor(task_id="window_" + g, poke_interval=5, target_time=
                                 datetime.datetime.fromtimestamp(t, datetime.timezone.utc))
               for g, t in WAVE["windows"].items()}}
    cutovers = {{}}
    for vm in WAVE["vms"]:
        tasks = {{}}
        for kind, weight in (("sync", 1), ("cutover", 10)):
            out = os.path.join(vm["workspace"], "evidence",
                               "airflow-{{{{ run_id | replace(':', '') | replace('+', '_') }}}}-" + kind, kind + ".ipynb")
            tasks[kind] = Runbook(task_id=vm["id"] + "." + kind, input_nb=WAVE["runbooks"][kind],
                                  output_nb=out, parameters=vm["params"][kind],
                                  kernel_name=WAVE["kernel"], pool=vm["pool"],
                                  priority_weight=weight, weight_rule="absolute",
                                  trigger_rule="all_success" if kind == "sync" else "all_done",
                                  # a sync runbook run again resumes (the local runner's
                                  # run.attempts); a failed cutover waits for the operator
                                  retries=2 if kind == "sync" else 0,
                                  retry_delay=datetime.timedelta(seconds=10))
        tasks["sync"] >> tasks["cutover"]
        windows[vm["group"]] >> tasks["cutover"]
        cutovers[vm["id"]] = (tasks["cutover"], vm["after"])
    for task, after in cutovers.values():
        for dep in after:
            cutovers[dep][0] >> task
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
