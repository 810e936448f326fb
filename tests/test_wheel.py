"""The package works when installed: a wheel built from the tree runs ``vmigrate run sync``.

Builds the wheel from a copy of the tree (pip, setuptools, no build isolation, no
index: offline), installs it into a fresh venv outside the checkout, installs the
Jupyter side the way the README tells an operator (``python -m
vmigrate_lib.faces.jupyter_setup``), then, from a working folder outside the checkout,
``vmigrate lab up``, ``vmigrate run sync -p lab.yaml`` and ``vmigrate evidence verify``.

The fresh venv borrows only the *dependencies* from the test's environment, through a
``.pth`` line naming its site-packages (a folder named by a ``.pth`` line is appended to
``sys.path`` but its own ``.pth`` files are not run, so the editable install's finder that
maps ``vmigrate_lib`` to the checkout stays inert). The test proves that vmigrate, its
runbooks and the kernel all come from the fresh venv, and that no ``vmigrate`` kernel is
visible there before the set-up step (Jupyter's user folder is a temporary one).

What only a real host would add: nothing about packaging; the run uses the embedded lab.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: What pyproject.toml builds the wheel from.
SOURCES = ("pyproject.toml", "README.md", "vmigrate_lib", "runbooks", "jupyter")
TIMINGS: dict[str, float] = {}


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300, timing: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; ``timing`` names the figure its duration is reported under."""
    start = time.monotonic()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if timing:
        TIMINGS[timing] = round(time.monotonic() - start, 2)
    return proc


def build_wheel(out: Path) -> Path:
    """The wheel, built from a copy of the tree (the checkout gets no build/ folder)."""
    src = out / "src"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = out / "dist"
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--no-index", "-q", "-w", str(dist), str(src)], cwd=out, timing="build wheel")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = dist.glob("vmigrate-*.whl")
    return wheel


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed; dependencies from this environment (read only)."""
    venv = where / "fresh"
    proc = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=where,
                timing="create venv")
    assert proc.returncode == 0, proc.stderr
    python = venv / "bin" / "python"
    proc = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                 "--no-deps", "--no-index", str(wheel)], cwd=where, timing="pip install wheel")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fresh_site = Path(_run([str(python), "-c",
                            "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           cwd=where).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            *site.getsitepackages()}
    (fresh_site / "zz_test_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    return venv


def operator_env(venv: Path, home: Path) -> dict[str, str]:
    """The operator's shell: the fresh venv first on PATH, nothing pointing at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "JUPYTER", "VMIGRATE_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["JUPYTER_DATA_DIR"] = str(home / "jupyter-data")  # no user kernels but the test's
    env["JUPYTER_CONFIG_DIR"] = str(home / "jupyter-config")
    env["IPYTHONDIR"] = str(home / "ipython")
    return env


@pytest.mark.timeout(900)  # about 35 s on 2 busy cores; the papermill run is most of it
def test_wheel_installed_outside_the_checkout_runs_the_sync_runbook(tmp_path: Path) -> None:
    """A wheel built from the tree holds the runbooks and the JupyterLab settings, and an
    install of it alone (fresh venv, cwd outside the checkout) runs ``vmigrate run sync``
    against the lab with an evidence archive that verifies. Before the runbooks shipped as
    package data the run stopped with exit 2, "runbook .../site-packages/runbooks/sync.ipynb
    not found"."""
    started = time.monotonic()
    wheel = build_wheel(tmp_path / "build")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("vmigrate_lib/runbooks/sync.ipynb", "vmigrate_lib/runbooks/cutover.ipynb",
                 "vmigrate_lib/jupyter_settings/overrides.json"):
        assert data in names, sorted(n for n in names if not n.endswith(".py"))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "vmigrate_lib").rglob("*.py")}
    assert modules <= names, sorted(modules - names)  # every module ships

    venv = fresh_venv(tmp_path, wheel)
    python, vmigrate = venv / "bin" / "python", venv / "bin" / "vmigrate"
    work = tmp_path / "operator"
    work.mkdir()
    env = operator_env(venv, tmp_path / "home")

    probe = _run([str(python), "-c", (
        "import json, vmigrate_lib\n"
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "from vmigrate_lib.faces.papermill_runner import runbooks_dir\n"
        "print(json.dumps({'lib': vmigrate_lib.__file__, 'runbooks': str(runbooks_dir()),\n"
        "                  'kernels': KernelSpecManager().find_kernel_specs()}))")],
        cwd=work, env=env)
    assert probe.returncode == 0, probe.stderr
    where = json.loads(probe.stdout)
    assert Path(where["lib"]).is_relative_to(venv), where  # the wheel's copy, not the checkout
    assert Path(where["runbooks"]).is_relative_to(venv), where
    assert (Path(where["runbooks"]) / "sync.ipynb").is_file(), where
    assert "vmigrate" not in where["kernels"], where  # nothing leaks in from elsewhere

    # the Jupyter side, as the README tells an operator with a wheel
    proc = _run([str(python), "-m", "vmigrate_lib.faces.jupyter_setup"], cwd=work, env=env,
                timing="jupyter set-up")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = json.loads((venv / "share/jupyter/kernels/vmigrate/kernel.json").read_text())
    assert Path(spec["argv"][0]) == python, spec  # the kernel runs the fresh venv's Python
    overrides = json.loads((venv / "share/jupyter/lab/settings/overrides.json").read_text())
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True

    shutil.copy(ROOT / "examples" / "lab.yaml", work / "lab.yaml")
    try:
        proc = _run([str(vmigrate), "lab", "up"], cwd=work, env=env, timing="lab up")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run = _run([str(vmigrate), "--quiet", "run", "sync", "-p", "lab.yaml",
                    "--set", "sync.max_cycles=2", "--set", "sync.target_interval=0.5s"],
                   cwd=work, env=env, timeout=600, timing="run sync")
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        _run([str(vmigrate), "lab", "down"], cwd=work, env=env, timeout=120)

    folder = Path(run.stdout.split("evidence: ")[-1].strip())
    assert folder.is_relative_to(work / "workspaces" / "alice" / "evidence"), run.stdout
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "ok" and record["kernel"] == "vmigrate", record
    assert record["result"]["cycles_run"] >= 1, record["result"]
    verify = _run([str(vmigrate), "evidence", "verify", str(folder)], cwd=work, env=env,
                  timing="evidence verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    TIMINGS["total"] = round(time.monotonic() - started, 2)
    print(f"\nwheel test timings (s): {json.dumps(TIMINGS)}")
