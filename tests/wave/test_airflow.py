"""The same wave on Apache Airflow: ``vmigrate wave airflow`` writes a DAG, a real Airflow
(``.venv-airflow``, scripts/setup_airflow.sh) runs it with ``airflow dags test`` against
four writing lab VMs, and its task instances (the sqlite metadata database) show the
limits held.

What it proves: the generated DAG imports under Airflow 3 with only Airflow's own
packages; each VM's sync and cutover runbooks run as PapermillOperator tasks with the
project's ``vmigrate`` kernel, their executed notebooks in the VM's workspace; the host
pair pools keep the runbooks running on a source host, a destination host and in total
within the limits (1 per host, 2 in total), from the task instances' start/end times;
the databases' cutovers end before any application's starts (the ``after`` edges); every
block each source guest acknowledged is on its copy.  Twice: with ``airflow dags test``,
which runs one task at a time and does not consult pools (the loop of ``DAG.test`` in
``airflow/sdk/definitions/dag.py`` queues every ready task), and under Airflow's own
scheduler (api-server on loopback, dag-processor, scheduler with the LocalExecutor, 4 in
parallel), which enforces pools: there the limits checked from the task instances are
what the pools held (without them the two VMs on esx-a would sync at once).  Pools limit the task instances
running in them, each task taking ``pool_slots`` of one pool
(https://airflow.apache.org/docs/apache-airflow/stable/administration-and-deployment/pools.html).
What only a real deployment would show: a distributed executor's workers (``dags test``
runs in one process), workspaces on storage every worker sees, real ESXi hosts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.wave.labwave import bob_problems, build_lab, wave_file
from vmigrate_lib.errors import WaveFileError
from vmigrate_lib.lab.lifecycle import lab_down
from vmigrate_lib.wave.airflow_dag import pair_slots
from vmigrate_lib.wave.model import Group, HostPair, Limits, VmTask, WavePlan
from vmigrate_lib.wave.spec import load_wave

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VMIGRATE_AIRFLOW_VENV", REPO / ".venv-airflow"))
AIRFLOW = VENV / "bin" / "airflow"
VMS = [  # name, source, destination, group
    ("db1", "esx-a", "esx-b", "db"), ("db2", "esx-c", "esx-d", "db"),
    ("app1", "esx-a", "esx-b", "app"), ("app2", "esx-c", "esx-d", "app"),
]
LIMITS = {"in_flight": 2, "per_source_host": 1, "per_destination_host": 1}
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


def _scheduler(env: dict[str, str], home: Path, dag_id: str) -> None:
    """The DAG under Airflow's own scheduler (LocalExecutor, 4 parallel), which is what
    enforces pools: api-server (loopback), dag-processor and scheduler, then one run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"}
    procs = [subprocess.Popen([str(AIRFLOW), *cmd], env=env, start_new_session=True,
                              stdout=open(home / f"{cmd[0]}.log", "wb"), stderr=subprocess.STDOUT)
             for cmd in (["api-server", "--host", "127.0.0.1", "--port", str(port)],
                         ["dag-processor"], ["scheduler"])]
    try:
        db, deadline = home / "airflow.db", time.time() + 1500
        while not sqlite3.connect(db).execute("SELECT 1 FROM dag WHERE dag_id = ?",
                                              (dag_id,)).fetchall():
            assert time.time() < deadline and all(p.poll() is None for p in procs)
            time.sleep(2)
        _airflow(env, "dags", "unpause", dag_id)
        _airflow(env, "dags", "trigger", dag_id)
        while True:
            states = [r[0] for r in sqlite3.connect(db).execute(
                "SELECT state FROM dag_run WHERE dag_id = ?", (dag_id,))]
            if states and states[0] in ("success", "failed"):
                break
            assert time.time() < deadline and all(p.poll() is None for p in procs), states
            time.sleep(2)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(60)


@pytest.mark.slow
@NO_AIRFLOW
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("how", ["dags-test", "scheduler"])
def test_wave_on_airflow_holds_the_limits(tmp_path: Path, lab_root: Path, how: str) -> None:
    ws = tmp_path / "ws"
    vms = [{"name": n, "source": s, "destination": d, "group": g} for n, s, d, g in VMS]
    path = wave_file(tmp_path / "wave.yaml", lab_root, ws, vms, limits=LIMITS,
                     groups=[{"name": "db"}, {"name": "app", "after": ["db"]}])
    dags = tmp_path / "dags"
    out = subprocess.run([*CLI, "wave", "airflow", str(path), "--out", str(dags)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    pools = json.loads(next(dags.glob("*-pools.json")).read_text())
    assert sorted(p["slots"] for p in pools.values()) == [1, 1]

    home = tmp_path / "airflow"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    _airflow(env, "db", "migrate")
    _airflow(env, "pools", "import", str(next(dags.glob("*-pools.json"))))
    if how == "dags-test":
        _airflow(env, "dags", "test", "vmigrate_wave_t", timeout=1500)
    else:
        _scheduler(env, home, "vmigrate_wave_t")

    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, state, start_date, end_date, pool FROM task_instance "
                          "WHERE dag_id = 'vmigrate_wave_t'").fetchall()
        slots = dict(db.execute("SELECT pool, slots FROM slot_pool").fetchall())
    tis = {r[0]: r for r in rows}
    print(how, "task instances:", json.dumps(rows, default=str))
    runbooks = {t: r for t, r in tis.items() if t.endswith((".sync", ".cutover"))}
    assert len(runbooks) == 8 and all(r[1] == "success" for r in runbooks.values()), rows
    span = {t: (_when(r[2]), _when(r[3])) for t, r in runbooks.items()}
    host = {n: (s, d) for n, s, d, _ in VMS}
    for t, r in runbooks.items():  # each runbook ran in its host pair's pool, of 1 slot
        s, d = host[t.split(".")[0]]
        assert r[4] == f"vmigrate-t-{s}-to-{d}" and slots[r[4]] == 1, r
    for side, limit in ((0, LIMITS["per_source_host"]), (1, LIMITS["per_destination_host"])):
        for h in {v[side] for v in host.values()}:
            on = [span[t] for t in span if host[t.split(".")[0]][side] == h]
            assert peak(on) <= limit, (h, on)
    assert peak(list(span.values())) <= LIMITS["in_flight"]
    print(how, "peak runbooks at once:", peak(list(span.values())))
    assert min(span[f"{a}.cutover"][0] for a in ("app1", "app2")) >= \
        max(span[f"{d}.cutover"][1] for d in ("db1", "db2"))

    spec = load_wave(path)
    for n, s, d, _g in VMS:
        assert bob_problems(lab_root, n, s, d, n) == []
        wsdir = Path(spec.vm_params[n]["workspace"])
        for kind in ("sync", "cutover"):
            assert list(wsdir.glob(f"evidence/airflow-*-{kind}/{kind}.ipynb")), (n, kind)
