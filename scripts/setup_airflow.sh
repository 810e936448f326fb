#!/bin/sh
# A separate virtual environment for Apache Airflow (.venv-airflow), used by
# `vmigrate wave airflow` users and by tests/wave/test_airflow.py (idempotent, quick
# when done). Separate from .venv so Airflow's pins never move the project's
# pandas/jupyter versions; the DAG's PapermillOperator tasks run the runbooks with the
# project's "vmigrate" Jupyter kernel (from .venv), so this venv needs nothing of vmigrate.
# Pins: Airflow's published constraints file is not reachable from here (only the
# package registry is), so these are the versions installed and tested together.
# Usage: scripts/setup_airflow.sh      (VMIGRATE_AIRFLOW_VENV overrides the folder)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
venv=${VMIGRATE_AIRFLOW_VENV:-.venv-airflow}
pins="apache-airflow==3.3.2 apache-airflow-providers-papermill==3.13.3 apache-airflow-providers-standard==1.21.0"
stamp="$venv/.vmigrate-airflow-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
    echo "setup_airflow: $venv ready"
    exit 0
fi
py=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
echo "setup_airflow: installing Apache Airflow into $venv (a few minutes the first time)"
"$venv/bin/python" -m pip install -q --upgrade pip
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install -q $pins
printf '%s' "$pins" > "$stamp"
echo "setup_airflow: done ($venv/bin/airflow version)"
