"""The same wave on Apache Airflow: ``vmigrate wave airflow`` writes a DAG, a real Airflow
(``.venv-airflow``, scripts/setup_airflow.sh) runs it under its own scheduler against the
lab wave's plan (8 writing lab VMs over 2 source and 2 destination hosts, 2 per host, 4 in
total, databases before applications, app3's probes failing), the Airflow stack is
SIGKILLed mid-run and started again, and the run finishes.

What it proves: the generated DAG imports under Airflow 3 with only Airflow's own
packages; each VM's sync and cutover runbooks run as PapermillOperator tasks with the
project's ``vmigrate`` kernel and each run is sealed in the VM's workspace as by
``vmigrate run`` (the manifest verifies); a VM waiting for its turn is kept warm by a task
in its pair's pool (so it holds its slot, and warm cycles run); the host pair pools keep
every task of the wave within the limits on each source host, each destination host and
in total, from the task instances' start/end times, and the wave's own journal (the VMs'
flights, as the local runner records them) stays within them too; the databases' cutovers
end before any application's starts; app3's failed probes roll it back (its source
running) while the 7 others complete with every block each source guest acknowledged on
its copy; the killed run resumes (the restarted scheduler resets the orphaned task
instances, ``adopt_or_reset_orphaned_tasks`` in ``airflow/jobs/scheduler_job_runner.py``,
and a cut-off runbook resumes its workspace); the wave report task seals the report.
The kill comes once a database's cutover is past its go/no-go (Alice asked to stop) or
done while its task still runs, so a cutover runbook is cut mid-way or before its seal;
no application's cutover runs yet (they wait for the databases'), so app3's failing one
is never cut (a run at load 0.2-3.6 that cut app3's showed a further defect: the killed
try's runner finished app3's attempt and rolled it back, the next try started attempt 2,
which go/no-go refused, and the VM ended "failed" instead of "rolled_back").  The killed try's task runner lives in its own process
group (the Task SDK's supervisor forks it with ``new_process_group=True``,
``airflow/sdk/execution_time/supervisor.py``; apache/airflow PR #65738, in 3.3 by
#71146) and its kernel in its own session (``start_new_session`` in
``jupyter_client/launcher.py``), so both may outlive the stack's kill and finish that
cutover while the next try waits for the workspace's lock; that try must then say the
VM is done (``airflow_task begin``), not run the runbook, which refuses a finished
workspace (before: both database cutovers' next tries failed on MigrationFinished, the
VMs "failed").  Either way the cut cutover is finished once: resumed, or already done.
Only the scheduler enforces pools: ``airflow dags test`` runs one task at a time and never
consults them (the loop of ``DAG.test`` in ``airflow/sdk/definitions/dag.py``), and a warm
task waiting there for another VM's cutover would wait for ever, so the suite runs the
scheduler only.  Pools limit the task instances running in them, each task taking
``pool_slots`` of one pool
(https://airflow.apache.org/docs/apache-airflow/stable/administration-and-deployment/pools.html).
What only a real deployment would show: a distributed executor's workers, workspaces on
storage every worker sees, real ESXi hosts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.wave.airflow_explain import cutting_over, explain
from tests.wave.labwave import bob_problems, build_lab, wave_file
from vmigrate_lib.audit.evidence import verify
from vmigrate_lib.control.lab import LabHost
from vmigrate_lib.engine.workspace import Journal
from vmigrate_lib.errors import WaveFileError
from vmigrate_lib.lab.lifecycle import lab_down
from vmigrate_lib.wave.airflow_slots import lane_order, lanes, pair_slots
from vmigrate_lib.wave.model import Group, HostPair, Limits, VmTask, WavePlan
from vmigrate_lib.wave.report import peaks
from vmigrate_lib.wave.spec import load_wave
from vmigrate_lib.wave.state import load

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VMIGRATE_AIRFLOW_VENV", REPO / ".venv-airflow"))
AIRFLOW = VENV / "bin" / "airflow"
VMS = [  # name, source, destination, group (the local lab wave's plan)
    ("db1", "esx-a", "esx-b", "db"), ("db2", "esx-c", "esx-d", "db"),
    ("app1", "esx-a", "esx-b", "app"), ("app2", "esx-a", "esx-d", "app"),
    ("app3", "esx-c", "esx-b", "app"), ("app4", "esx-c", "esx-d", "app"),
    ("app5", "esx-a", "esx-b", "app"), ("app6", "esx-c", "esx-d", "app"),
]
FAILING = "app3"
DATABASES = ("db1", "db2")  #: the kill cuts one of their cutovers (before any app's starts)
LIMITS = {"in_flight": 4, "per_source_host": 2, "per_destination_host": 2}
CLI = [sys.executable, "-m", "vmigrate_lib.faces.cli"]

NO_AIRFLOW = pytest.mark.skipif(
    not (VENV / ".vmigrate-airflow-installed").exists(),
    reason=f"Apache Airflow is not installed in {VENV}: run scripts/setup_airflow.sh "
    "(scripts/test.sh does; it needs the package registry)")


@pytest.fixture
def lab_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "lab"
    build_lab(root, [(n, s) for n, s, _, _ in VMS])
    yield root
    lab_down(root)


def _airflow(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    proc = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"airflow {' '.join(args)}: {proc.stdout[-3000:]}" \
        f"{proc.stderr[-3000:]}"
    return proc.stdout


def _when(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def peak(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end before a start at the same time)."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    top = now = 0
    for _, step in events:
        now += step
        top = max(top, now)
    return top


def test_peak_counts_overlaps_only() -> None:
    assert peak([(0, 1), (1, 2)]) == 1
    assert peak([(0, 2), (1, 3), (1.5, 1.6)]) == 3


def _plan(pairs: list[tuple[str, str]], in_flight: int, per_host: int) -> WavePlan:
    vms = tuple(VmTask(f"v{i}", "g", s, d, f"v{i}", 60.0) for i, (s, d) in enumerate(pairs))
    return WavePlan("w", vms, (Group("g"),), Limits(in_flight, per_host, per_host))


def test_pair_pools_split_the_limits() -> None:
    """Every pair gets a slot, the busiest more, and no host or total limit is exceeded by
    the pools' slots added up (so by anything running in them)."""
    pairs = [("a", "b")] * 4 + [("a", "d"), ("c", "d"), ("c", "d")]
    slots = pair_slots(_plan(pairs, in_flight=5, per_host=3))
    assert slots == {HostPair("a", "b"): 2, HostPair("a", "d"): 1, HostPair("c", "d"): 2}
    with pytest.raises(WaveFileError, match="no slot for each of the 2 host pairs"):
        pair_slots(_plan([("a", "b"), ("a", "d")], in_flight=4, per_host=1))


def _flights(plan: WavePlan, lane: dict[str, str | None], took: dict[str, float]) -> dict[str, int]:
    """Peak VMs in flight per host when each VM starts as its lane's previous VM ends (the
    DAG's edges, nothing else: the pools and the scheduler are what Airflow adds)."""
    end: dict[str, float] = {}
    span: dict[str, tuple[float, float]] = {}
    for v in lane_order(plan):  # a lane's previous VM comes earlier in this order
        before = lane[v.name]
        start = 0.0 if before is None else end[before]
        end[v.name] = start + took[v.name]
        span[v.name] = (start, end[v.name])
    out = {"total": peak(list(span.values()))}
    for v in plan.vms:
        out[f"src:{v.source}"] = peak([span[w.name] for w in plan.vms if w.source == v.source])
        out[f"dst:{v.destination}"] = peak([span[w.name] for w in plan.vms
                                            if w.destination == v.destination])
    return out


def test_lanes_keep_each_pair_within_its_slots() -> None:
    """Whatever each VM takes, chaining a pair's VMs in as many lanes as its slots keeps the
    VMs in flight per host and in total within the limits (random durations, 200 draws).
    Before the lanes the DAG had only pools, which Airflow frees between a VM's tasks."""
    rng = random.Random(7)
    pairs = [("a", "b")] * 5 + [("a", "d")] * 3 + [("c", "d")] * 4 + [("c", "b")] * 2
    plan = _plan(pairs, in_flight=4, per_host=2)
    lane = lanes(plan, pair_slots(plan))
    assert sum(b is None for b in lane.values()) == sum(pair_slots(plan).values())
    for _ in range(200):
        took = {v.name: rng.uniform(1, 100) for v in plan.vms}
        fl = _flights(plan, lane, took)
        assert fl["total"] <= 4 and all(n <= 2 for k, n in fl.items() if k != "total"), fl


def test_lanes_put_earlier_groups_first() -> None:
    """An application VM listed before its database in the file must not hold the lane the
    database needs: the app waits for the database's cutover, the database for the lane
    (a deadlock). Lanes take groups in dependency order, then by window."""
    vms = (VmTask("app1", "app", "a", "b", "app1", 60.0),
           VmTask("app2", "app", "a", "b", "app2", 60.0),
           VmTask("db1", "db", "a", "b", "db1", 60.0))
    plan = WavePlan("w", vms, (Group("app", after=("db",)), Group("db")), Limits(1, 1, 1))
    assert [v.name for v in lane_order(plan)] == ["db1", "app1", "app2"]
    assert lanes(plan, pair_slots(plan)) == {"db1": None, "app1": "db1", "app2": "app1"}


def _stack(env: dict[str, str], home: Path, tag: str) -> list[subprocess.Popen[bytes]]:
    """Airflow's own scheduler (LocalExecutor, 5 parallel: the wave's 4 and the report), which is what enforces pools:
    api-server (loopback), dag-processor and scheduler, each in its own process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "5",
           # on 2 loaded cores the api-server (sqlite) answers a task's start in > 5 s
           "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
           # and a task's parse of the DAG file (papermill's imports) takes > 30 s
           "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
           "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
           # after a kill: the dead scheduler's task instances are reset within a minute
           # (a threshold of 10 s made the loaded live scheduler reset its own tasks)
           "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "60",
           "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15"}
    procs: list[subprocess.Popen[bytes]] = []
    for cmd in (["api-server", "--host", "127.0.0.1", "--port", str(port)],
                ["dag-processor"], ["scheduler"]):
        procs.append(subprocess.Popen([str(AIRFLOW), *cmd], env=env, start_new_session=True,
                                      stdout=open(home / f"{cmd[0]}-{tag}.log", "wb"),
                                      stderr=subprocess.STDOUT))
        if cmd[0] == "api-server":  # tasks started before it listens fail to start
            _wait("the api-server", lambda: _listens(port), procs, timeout=600)
    return procs


def _listens(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(procs: list[subprocess.Popen[bytes]], sig: int) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
    for p in procs:
        p.wait(60)


def _tis(db: Path) -> dict[str, tuple[str, str | None, str | None, str]]:
    with sqlite3.connect(db) as c:
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in c.execute(
            "SELECT task_id, state, start_date, end_date, pool FROM task_instance "
            "WHERE dag_id = 'vmigrate_wave_t'")}


def _run_state(db: Path) -> str | None:
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT state FROM dag_run WHERE dag_id = 'vmigrate_wave_t'").fetchone()
    return row[0] if row else None


def _wait(what: str, ok: Callable[[], bool], procs: list[subprocess.Popen[bytes]],
          timeout: float = 1800) -> None:
    deadline = time.time() + timeout
    while not ok():
        assert time.time() < deadline, f"timed out waiting for {what}"
        assert all(p.poll() is None for p in procs), f"an Airflow process ended ({what})"
        time.sleep(2)


@pytest.mark.slow
@NO_AIRFLOW
@pytest.mark.timeout(3000)
def test_wave_on_airflow_killed_resumed_limits_held(tmp_path: Path, lab_root: Path) -> None:
    ws = tmp_path / "ws"
    vms: list[dict[str, Any]] = [{"name": n, "source": s, "destination": d, "group": g}
                                 for n, s, d, g in VMS]
    vms[4]["params"] = {"cutover": {"probe_command": "false", "probe_timeout": "2s"}}
    path = wave_file(tmp_path / "wave.yaml", lab_root, ws, vms, limits=LIMITS,
                     groups=[{"name": "db"}, {"name": "app", "after": ["db"]}],
                     run={"rollback_after_probes": True, "poll": "1s"})
    dags = tmp_path / "dags"
    out = subprocess.run([*CLI, "wave", "airflow", str(path), "--out", str(dags)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    pools = json.loads(next(dags.glob("*-pools.json")).read_text())
    assert sorted(p["slots"] for p in pools.values()) == [1, 1, 1, 1]

    home = tmp_path / "airflow"
    home.mkdir()
    db = home / "airflow.db"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}"}
    _airflow(env, "db", "migrate")
    _airflow(env, "pools", "import", str(next(dags.glob("*-pools.json"))))
    t0 = time.time()
    cut: list[str] = []  # the VMs whose cutover the kill cuts mid-way
    procs = _stack(env, home, "first")
    try:
        _wait("the DAG", lambda: bool(sqlite3.connect(db).execute(
            "SELECT 1 FROM dag WHERE dag_id = 'vmigrate_wave_t'").fetchall()), procs)
        _airflow(env, "dags", "unpause", "vmigrate_wave_t")
        _airflow(env, "dags", "trigger", "vmigrate_wave_t")
        def cutting() -> bool:  # a database's (no application's cutover runs yet)
            running = {t.split(".")[0] for t, r in _tis(db).items()
                       if t.endswith(".cutover") and r[0] == "running"}
            cut[:] = [vm for vm in cutting_over(ws, DATABASES) if vm in running]
            return bool(cut)

        _wait("a cutover past its go/no-go", cutting, procs)
    finally:
        _stop(procs, signal.SIGKILL)  # the whole Airflow stack dies mid-cutover
    killed = _tis(db)
    assert any(r[0] == "running" for r in killed.values()), killed
    procs = _stack(env, home, "second")
    try:
        _wait("the run to end", lambda: _run_state(db) in ("success", "failed"), procs)
    finally:
        _stop(procs, signal.SIGTERM)
    measured = time.time() - t0

    tis = _tis(db)
    print("task instances:", json.dumps(tis, default=str))
    print("running when killed:", sorted(t for t, r in killed.items() if r[0] == "running"),
          "cutovers cut mid-way:", cut)
    expected = {"wave_report": "success"}
    for n, *_ in VMS:
        expected |= {f"{n}.sync": "success", f"{n}.warm": "success",
                     f"{n}.cutover": "failed" if n == FAILING else "success"}
    wrong = sorted(t for t, want in expected.items() if tis.get(t, ("absent",))[0] != want)
    assert not wrong, f"tasks not as expected: {[(t, tis.get(t)) for t in wrong]}\n" + \
        explain(db, home, ws, load_wave(path).wave_dir, wrong)
    host = {n: (s, d) for n, s, d, _ in VMS}
    span = {t: (_when(r[1]), _when(r[2])) for t, r in tis.items()  # type: ignore[arg-type]
            if t != "wave_report"}
    for t in span:  # each task ran in its host pair's pool
        s, d = host[t.split(".")[0]]
        assert tis[t][3] == f"vmigrate-t-{s}-to-{d}", (t, tis[t])
    pk: dict[str, int] = {"total": peak(list(span.values()))}
    for side, key in ((0, "src"), (1, "dst")):
        for h in {v[side] for v in host.values()}:
            pk[f"{key}:{h}"] = peak([span[t] for t in span if host[t.split(".")[0]][side] == h])
    print("peak tasks at once:", pk)
    assert pk["total"] <= LIMITS["in_flight"], pk
    assert all(v <= 2 for k, v in pk.items() if k != "total"), pk
    assert min(span[f"app{i}.cutover"][0] for i in range(1, 7)) >= \
        max(span[f"{d}.cutover"][1] for d in ("db1", "db2"))

    spec = load_wave(path)
    state = load(spec.wave_dir / "state.json")
    assert state is not None
    assert {k: v.status for k, v in state.vms.items()} == {
        n: ("rolled_back" if n == FAILING else "done") for n, *_ in VMS}
    # each cutover the kill cut mid-way was finished once: resumed by the task's next try
    # (cutover_resumed in its workspace), or finished by the killed try's own runner and
    # kernel, which outlive the stack (the next try then says so: vm_cutover_already_done)
    done_again = {r["vm"] for r in Journal(spec.wave_dir / "journal.jsonl").records(
        "vm_cutover_already_done")}
    how = {vm: ("resumed" if any(True for _ in Journal(ws / vm / "journal.jsonl").records(
        "cutover_resumed")) else "") + (" already done" if vm in done_again else "")
        for vm in cut}
    print("cut cutovers finished by:", how)
    assert cut and all(how.values()), how
    flights = peaks(spec.wave_dir / "journal.jsonl")  # the VMs' flights, as the local runner
    print("peak VMs in flight (wave journal):", flights)
    assert sum(v.warm_cycles for v in state.vms.values()) > 0  # waiting VMs kept warm
    for n, s, d, _g in VMS:
        if n == FAILING:
            assert LabHost(lab_root, s).power_state(n) == "poweredOn"
        else:
            assert bob_problems(lab_root, n, s, d, n) == []
        sealed = state.vms[n].evidence
        kinds = {json.loads((Path(f) / "run.json").read_text())["runbook"] for f in sealed}
        assert kinds == {"sync", "cutover"} and all(verify(Path(f)).ok for f in sealed), n
    reports = sorted((spec.wave_dir / "report").iterdir())
    assert reports and verify(reports[-1]).ok
    assert "rolled_back" in (reports[-1] / "wave-report.ipynb").read_text()
    planned = spec.plan(t0)
    print("airflow wave figures:", json.dumps({
        "measured_s": round(measured, 1), "peaks_tasks": pk, "peaks_flights": flights,
        "limits": LIMITS, "vms": len(planned.vms)}))
    # The VMs' flights (sync start to cutover end, as the wave journal records them) held
    # the limits too: a pool slot is free between a VM's tasks, the lanes keep them (the
    # CI-path run before the lanes: 6 VMs in flight against 4 at load ~5).
    assert flights["total"] <= LIMITS["in_flight"], flights
    assert all(v <= 2 for k, v in flights.items() if k != "total"), flights
