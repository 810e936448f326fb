"""The runner's kernel starts without ipykernel's "running over TCP without encryption"
warning (issue 14 item 9: it was a red stderr block in every notebook that ran a
runbook, e.g. the rehearsal walkthrough).  The kernel uses jupyter_client's ``ipc``
transport (``ipykernel/kernelapp.py`` warns only for ``tcp`` without CurveZMQ keys).
A real kernel under papermill, in a child process whose stderr is read; a failing run
(no such VM) is enough to start and stop the kernel.  No ESXi needed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmigrate_lib.faces.kernel_transport import SUN_PATH_MAX, IpcKernelManager, private_dir


def test_no_tcp_warning_from_the_runner_kernel(lab: Path, params: dict[str, Any]) -> None:
    (lab / "params.yaml").write_text(yaml.safe_dump({**params, "vm": "nobody"}))
    proc = subprocess.run(
        [sys.executable, "-m", "vmigrate_lib.faces.cli", "run", "sync",
         "--params", str(lab / "params.yaml")],
        capture_output=True, text=True, timeout=300, cwd=lab, env=dict(os.environ), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # VmNotFound: the kernel ran
    assert "nobody" in proc.stdout + proc.stderr
    assert "without encryption" not in proc.stderr + proc.stdout, proc.stderr


# --- each kernel on its own sockets --------------------------------------------------
# jupyter_client's default ``ip`` for the ipc transport is the relative "kernel-ipc" when it
# is read before the manager has a connection file (jupyter_client/connect.py,
# ``_ip_default``), which is how papermill's manager reads it.  Every kernel started from
# one folder then bound kernel-ipc-1..5 there: a wave's runbooks, run side by side from
# one folder, reached each other's kernels ("Invalid Signature" in the VM logs, "Kernel
# didn't respond in 60 seconds"; a client waiting for a reply that never comes).  What
# this proves: two real kernels started from one folder each answer their own client, on
# sockets in a private folder.  No ESXi involved.


def _private(path: Path) -> bool:
    st = path.stat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


def test_socket_names_are_unique_absolute_and_private(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    short = Path(tempfile.mkdtemp(prefix="vmt-"))  # tmp_path can be too deep for a socket
    try:
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(short / "rt"))
        a, b = IpcKernelManager(kernel_name="python3"), IpcKernelManager(kernel_name="python3")
        assert a.transport == "ipc" and a.ip != b.ip
        for km in (a, b):
            assert os.path.isabs(km.ip) and Path(km.ip).parent == short / "rt"
            assert not a.own_dir
        assert _private(short / "rt")
    finally:
        shutil.rmtree(short)
    # a runtime folder too deep for a Unix socket's path: a private temporary folder
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(deep))
    c = IpcKernelManager(kernel_name="python3")
    assert len(os.fsencode(c.ip + "-65535")) <= SUN_PATH_MAX
    assert c.own_dir and _private(Path(c.own_dir))
    c.cleanup_ipc_files()
    assert not Path(c.own_dir or "/nonexistent").exists()


def test_a_runtime_folder_not_private_is_left_alone(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime folder others may enter (``JUPYTER_RUNTIME_DIR=/tmp``, say) or another
    user's is neither used nor chmod-ed: each kernel gets a private folder of its own."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    cases = [shared]
    if os.getuid() == 0:  # only root can give a folder to another user
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        cases.append(theirs)
    for folder in cases:
        before = folder.stat()
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(folder))
        km = IpcKernelManager(kernel_name="python3")
        assert private_dir(str(folder)) is None
        sockets = Path(km.ip).parent  # read first: the default is made when read
        assert km.own_dir and sockets == Path(km.own_dir) and _private(sockets)
        after = folder.stat()
        assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
        km.cleanup_ipc_files()


async def _own_pid(km: IpcKernelManager) -> int:
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute_interactive("", user_expressions={"pid": "__import__('os').getpid()"},
                                             timeout=30)
        return int(reply["content"]["user_expressions"]["pid"]["data"]["text/plain"])
    finally:
        kc.stop_channels()


@pytest.mark.timeout(240)
def test_two_kernels_from_one_folder_answer_their_own_clients(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def both() -> list[tuple[int, int]]:
        kms = [IpcKernelManager(kernel_name="python3") for _ in range(2)]
        # started at once, as a wave's runbooks are: each picks its socket names before
        # either kernel has bound its own
        await asyncio.gather(*(km.start_kernel() for km in kms))
        try:
            assert not list(tmp_path.glob("kernel-ipc*")), "sockets in the working folder"
            return [(await _own_pid(km), km.provisioner.pid) for km in kms]  # type: ignore[union-attr]
        finally:
            for km in kms:
                await km.shutdown_kernel(now=True)

    for answered, started in asyncio.run(both()):
        assert answered == started
