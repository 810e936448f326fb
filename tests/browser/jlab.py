"""A token-less JupyterLab on 127.0.0.1 for browser tests, and Debian's Chromium to drive it.

The server runs the environment's Jupyter configuration (what ``jupyter/install.sh``
installed: the vmigrate kernel, the JupyterLab overrides, the sealed-evidence contents
manager), with a temporary HOME and per-user Jupyter folders.  Screenshots go to
``artifacts/`` (git-ignored), kept as test artifacts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "artifacts"
#: The user settings every browser test uses: all cells rendered, no news fetched.
BASE_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        data: bytes = r.read()
        return data


@contextmanager
def jupyterlab(tmp_path: Path, root: Path,
               settings: Mapping[str, Mapping[str, Any]] = BASE_SETTINGS,
               extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """Run JupyterLab serving ``root`` with these user settings (plugin id -> values) and
    extra command-line options; yields its base URL."""
    env = dict(os.environ)
    for var, sub in (("HOME", "home"), ("JUPYTER_CONFIG_DIR", "cfg"),
                     ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "rt"),
                     ("IPYTHONDIR", "ipy")):
        (tmp_path / sub).mkdir(exist_ok=True)
        env[var] = str(tmp_path / sub)
    env.pop("VMIGRATE_HEADLESS", None)
    for plugin, values in settings.items():
        package, _, name = plugin.rpartition("/")
        path = tmp_path / "cfg" / "lab" / "user-settings" / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(values)))
    port = free_port()
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             "--IdentityProvider.token=", "--ServerApp.password=",
             "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=None", "--LabApp.check_for_updates_class="
             "jupyterlab.NeverCheckForUpdate", *extra_args],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http_get(f"{base}/api/status")
                    break
                except OSError as exc:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log_path.read_text()[-3000:]) from exc
                    time.sleep(0.3)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def launch(p: Any) -> Any:
    """Debian's chromium through Playwright (no browser download)."""
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"])


def answer_kernel_dialog(page: Any, button: str) -> None:
    """A fresh JupyterLab may ask which kernel to start: press ``button`` if it does."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    choice = page.locator(".jp-Dialog button", has_text=button)
    try:
        choice.first.wait_for(timeout=10_000)
        choice.first.click()
    except PlaywrightTimeout:
        pass


IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"


def start_kernel(page: Any, base: str, notebook: str, timeout: float = 300.0) -> None:
    """Wait until ``notebook``'s own kernel runs and is idle, pressing the kernel dialog's
    Select whenever it shows.  Under load the dialog can show more than 10 s after the
    notebook's cells (a hand-run test timed out once: the dialog came after
    ``answer_kernel_dialog`` had stopped waiting, so no kernel started), and the page's idle
    indicator can show before it: the server's session list says when a kernel runs."""
    choice = page.locator(".jp-Dialog button", has_text="Select")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if choice.count():
            choice.first.click()
        elif _kernel_idle(base, notebook) and page.locator(IDLE).count():
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"no idle kernel for {notebook} within {timeout:.0f} s")


def _kernel_idle(base: str, notebook: str) -> bool:
    sessions = json.loads(http_get(f"{base}/api/sessions"))
    return any(s.get("path") == notebook and (s.get("kernel") or {}).get("execution_state")
               == "idle" for s in sessions)
