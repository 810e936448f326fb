#!/bin/sh
# Set up, then run every test: type checks, lint, and the pytest suite (unit, lab
# integration, cutover faults, runbooks through papermill, SSH over real sshd in
# network namespaces, the vSphere simulator, JupyterLab in Chromium).
# Usage: scripts/test.sh [pytest args]
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
sh scripts/setup.sh
sh scripts/setup_airflow.sh || echo "== Airflow not installed: tests/wave/test_airflow.py skips"
echo "== building the vSphere simulator peer"
sh tests/peers/build_vcsim.sh
echo "== mypy --strict (vmigrate_lib)"
.venv/bin/mypy
echo "== mypy (tests: every body checked, see pyproject's tests.* override)"
.venv/bin/mypy -p tests
echo "== ruff"
.venv/bin/ruff check vmigrate_lib tests bench
echo "== pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
