"""The runner's kernels talk over Unix sockets, not TCP.

ipykernel warns on every start over TCP without CurveZMQ keys ("Kernel is running over
TCP without encryption ... Use IPC transport", ``ipykernel/kernelapp.py``), and the
warning landed as a red stderr block in every notebook that runs a runbook.  With
jupyter_client's ``ipc`` transport the sockets are files beside the kernel's connection
file in the private Jupyter runtime folder, reachable only by their owner, so the
warning's cause is gone rather than hidden.
"""

from __future__ import annotations

from jupyter_client.manager import AsyncKernelManager
from traitlets import CaselessStrEnum


class IpcKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager with ``transport = "ipc"`` by default."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
