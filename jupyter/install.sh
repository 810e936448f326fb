#!/bin/sh
# Set-up of the Jupyter side of vmigrate (run once per environment, after pip install):
#  * a named kernel "vmigrate" (the runbooks' kernelspec; `vmigrate run` uses it),
#  * JupyterLab settings the project ships (lab/settings/overrides.json: widget state saved
#    with hand-run notebooks), merged into <prefix>/share/jupyter/lab/settings/overrides.json,
#  * the server's settings: sealed evidence read-only, LabApp.expose_app_in_browser (the
#    runbooks' last cell saves a hand run through it to archive it).
# Both come from the installed package (python -m vmigrate_lib.faces.jupyter_setup), which
# reads the settings as package data: the same for a checkout and for an installed wheel.
# Usage: jupyter/install.sh [PYTHON]   (default: .venv/bin/python, else python3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=${1:-}
if [ -z "$py" ]; then
    if [ -x "$here/../.venv/bin/python" ]; then py="$here/../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m vmigrate_lib.faces.jupyter_setup
