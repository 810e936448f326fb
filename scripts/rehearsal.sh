#!/bin/sh
# The main job, headless: rehearse a whole migration in the embedded lab.
#   lab up -> sync runbook until converged -> cutover runbook -> evidence verified.
# Every run's evidence (executed notebook, HTML, CSV, PNG, journal slice, manifest)
# lands in <DIR>/workspaces/alice/evidence/; the script prints where.
#
# Usage: scripts/rehearsal.sh [DIR]        (default: workspaces/rehearsal-<UTC timestamp>, git-ignored)
# Env:   VMIGRATE_PYTHON (default .venv/bin/python), MAX_SYNC_RUNS (default 5),
#        KEEP_LAB=1 leaves the lab's guests running afterwards.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${VMIGRATE_PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=python3
dir=${1:-$repo/workspaces/rehearsal-$(date -u +%Y%m%dT%H%M%SZ)}
max_runs=${MAX_SYNC_RUNS:-5}
mkdir -p "$dir"
cd "$dir"
vmigrate() { "$py" -m vmigrate_lib.faces.cli "$@"; }
evidence_of() { sed -n 's/^evidence: //p' "$1" | tail -n 1; }
field() { "$py" -c 'import json,sys; r=json.load(open(sys.argv[1]+"/run.json")); print((r.get("result") or {}).get(sys.argv[2]))' "$1" "$2"; }
# "1.2 s (predicted 93.4 s)" from a cutover run's result
downtime() { "$py" -c 'import json,sys
r = json.load(open(sys.argv[1] + "/run.json")).get("result") or {}
f = lambda v: "?" if v is None else "%.1f s" % v
print("%s (predicted %s)" % (f(r.get("downtime_s")), f(r.get("predicted_downtime_s"))))' "$1"; }

if [ "${KEEP_LAB:-0}" != 1 ]; then
    trap 'vmigrate lab down --root .vmigrate-lab >/dev/null 2>&1 || true' EXIT
fi

echo "== lab up in $dir"
vmigrate lab up --root .vmigrate-lab >/dev/null
if [ ! -f params.yaml ]; then
    # One params file for every face: vmigrate preflight/sync/cutover and both runbooks.
    cat > params.yaml <<YAML
# Rehearsal parameters (lab hosts on both sides; no credentials needed).
vm: alice
hosts: lab
change_id: REHEARSAL-$(date -u +%Y%m%d)
operator: ${USER:-rehearsal}
source: {type: lab, host: esx-a, lab_root: .vmigrate-lab}
destination: {type: lab, host: esx-b, lab_root: .vmigrate-lab}
workspace: workspaces/alice
downtime_budget: 2m
sync: {max_cycles: 10}
cutover: {shutdown_timeout: 1m, certify: changed, expected_shutdown: 2s, expected_boot: 2s}
YAML
fi
folders=""
i=1
converged=False
while [ "$i" -le "$max_runs" ]; do
    echo "== sync runbook, run $i"
    rc=0
    vmigrate run sync --params params.yaml > "sync-$i.log" 2>&1 || rc=$?
    cat "sync-$i.log"
    ev=$(evidence_of "sync-$i.log")
    folders="$folders $ev"
    [ "$rc" -eq 0 ] || { echo "rehearsal: sync runbook failed (exit $rc); evidence in $ev" >&2; exit "$rc"; }
    converged=$(field "$ev" converged)
    [ "$converged" = True ] && break
    i=$((i + 1))
done
[ "$converged" = True ] || { echo "rehearsal: not converged after $max_runs sync runs" >&2; exit 1; }

echo "== cutover runbook"
rc=0
vmigrate run cutover --params params.yaml > cutover.log 2>&1 || rc=$?
cat cutover.log
ev=$(evidence_of cutover.log)
folders="$folders $ev"
[ "$rc" -eq 0 ] || { echo "rehearsal: cutover runbook failed (exit $rc); evidence in $ev" >&2; exit "$rc"; }

echo "== evidence verified"
for f in $folders; do vmigrate evidence verify "$f"; done
echo "rehearsal done: downtime $(downtime "$ev")"
echo "evidence: $dir/workspaces/alice/evidence"
