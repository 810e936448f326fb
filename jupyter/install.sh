#!/bin/sh
# Set-up of the Jupyter side of vmigrate (run once per environment, after pip install):
#  * a named kernel "vmigrate" (the runbooks' kernelspec; `vmigrate run` uses it),
#  * JupyterLab settings the project ships: widget state saved with hand-run notebooks
#    (jupyterlab-manager saveState), merged into <prefix>/share/jupyter/lab/settings/overrides.json.
# Usage: jupyter/install.sh [PYTHON]   (default: .venv/bin/python, else python3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=${1:-}
if [ -z "$py" ]; then
    if [ -x "$here/../.venv/bin/python" ]; then py="$here/../.venv/bin/python"; else py=python3; fi
fi
"$py" -m ipykernel install --sys-prefix --name vmigrate --display-name "Python (vmigrate)" >/dev/null
"$py" - "$here/lab/settings/overrides.json" <<'PYEOF'
import json, sys
from pathlib import Path
ours = json.loads(Path(sys.argv[1]).read_text())
target = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
target.parent.mkdir(parents=True, exist_ok=True)
current = json.loads(target.read_text()) if target.exists() else {}
for plugin, values in ours.items():
    current.setdefault(plugin, {}).update(values)
target.write_text(json.dumps(current, indent=2) + "\n")
print(f"kernel 'vmigrate' installed; JupyterLab overrides in {target}")
PYEOF
