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
echo "== mypy (bench: run by hand, so a type error would otherwise wait for the next bench run)"
.venv/bin/mypy bench
echo "== ruff"
.venv/bin/ruff check vmigrate_lib tests bench
# pytest on parallel workers (pytest-xdist): most tests wait on guests, sshd, kernels and
# sleeps, not on the CPU.  Longest tests first (tests/durations.txt); the machine-loading
# ones share one worker (tests/conftest.py).  VMIGRATE_TEST_WORKERS=N sets the count:
# default 3 on CI's 2 cores (tests/lab + tests/cutover, 102 tests, load 3-5: serial 253 s,
# 2 workers 146 s, 3 workers 113 s, all passing);
# -n/--numprocesses or -p no:xdist in the arguments replace these flags (-n 0: in order).
workers=${VMIGRATE_TEST_WORKERS:-3}
xdist="-n $workers --dist loadgroup"
for arg in "$@"; do
    case "$arg" in
        -n|-n[0-9]*|--numprocesses|--numprocesses=*|no:xdist|-pno:xdist) xdist="" ;;
    esac
done
# The machine as the suite finds it (CI keeps only the output; tests/resources.py prints
# the low points at the end).  Passed tests' folders go at their teardown (pyproject's
# tmp_path_retention_policy); the largest tests write about 1.3 GB each.
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
    "$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo) MiB memory available," \
    "$(df -Pm "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}') MiB free in ${TMPDIR:-/tmp}"
# what killed test runs left (lab guests writing on, namespaces of dead pids) goes first
.venv/bin/python -m tests.leftovers
# what already runs (a machine busy before the suite starts is named, not guessed at)
ps -ww -eo pid,etime,pcpu,rss,args --sort=-pcpu | head -6 | cut -c1-160
echo "== pytest ${xdist:-(arguments as given)}"
# shellcheck disable=SC2086  # $xdist is several words on purpose
exec .venv/bin/python -m pytest -q -p no:cacheprovider $xdist "$@"
