"""The runner's kernels talk over Unix sockets, not TCP, each kernel on its own sockets.

ipykernel warns on every start over TCP without CurveZMQ keys ("Kernel is running over
TCP without encryption ... Use IPC transport", ``ipykernel/kernelapp.py``), and the
warning landed as a red stderr block in every notebook that runs a runbook.  With
jupyter_client's ``ipc`` transport the warning's cause is gone rather than hidden.

Where the sockets go matters.  jupyter_client names them after the connection file, but
its default for ``ip`` is read before papermill's manager has a connection file, and then
it is the relative ``kernel-ipc`` (``jupyter_client/connect.py``, ``_ip_default``): every
kernel started from one folder bound ``kernel-ipc-1`` .. ``-5`` in that folder.  A wave
runs several runbooks at once from one folder, so a kernel's client reached another
kernel's sockets: ``ValueError: Invalid Signature`` in the VM logs, "Kernel didn't respond
in 60 seconds", and a client waiting for a reply that never comes.  A folder other users
can write was also a place where another user could bind those names first.  Each kernel
here gets its own names in the private Jupyter runtime folder (made 0700 if missing), or
in a private temporary folder of its own when that folder is not private (never chmod-ed:
it may be ``/tmp``) or too deep for a Unix socket's path.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
import weakref
from typing import Any, ClassVar

from jupyter_client.localinterfaces import localhost
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import CaselessStrEnum, Unicode, default

#: A Unix socket's path must fit ``sun_path`` (108 bytes on Linux, with its NUL); the
#: longest name here is ``<folder>/kernel-<id>-ipc-<port>``, a port of up to 5 digits.
SUN_PATH_MAX = 107
_PORT_MAX = len("-65535")


def private_dir(path: str) -> str | None:
    """``path`` if it is (or is now made, 0700) a folder of this user's that no one else
    may enter; None otherwise (never chmod-ed here: it may be ``/tmp``)."""
    try:
        os.makedirs(path, mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


class IpcKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager with ``transport = "ipc"`` by default, and socket
    names of its own in a private folder."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
    #: a temporary folder made for this kernel's sockets (removed with them), if any
    own_dir = Unicode("")
    #: the managers whose kernel is up, for :func:`live_kernel_groups`
    started: ClassVar[weakref.WeakSet[IpcKernelManager]] = weakref.WeakSet()

    @default("ip")
    def _unique_ip(self) -> str:
        if self.transport != "ipc":
            return str(localhost())  # jupyter_client's own default for tcp
        name = f"kernel-{uuid.uuid4().hex[:16]}-ipc"
        folder = private_dir(jupyter_runtime_dir())
        if folder is None or len(os.fsencode(os.path.join(folder, name))) + _PORT_MAX > SUN_PATH_MAX:
            self.own_dir = folder = tempfile.mkdtemp(prefix="vmigrate-k-")  # 0700, ours
        return os.path.join(folder, name)

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        await super()._async_post_start_kernel(**kw)
        IpcKernelManager.started.add(self)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        IpcKernelManager.started.discard(self)
        await super()._async_cleanup_resources(restart=restart)

    def cleanup_ipc_files(self) -> None:
        super().cleanup_ipc_files()
        if self.own_dir:
            shutil.rmtree(self.own_dir, ignore_errors=True)
            self.own_dir = ""


def live_kernel_groups() -> list[int]:
    """The process groups of the kernels this process started and has not shut down (a
    kernel runs in its own session: jupyter_client's launcher, ``start_new_session``)."""
    groups = []
    for km in list(IpcKernelManager.started):
        pgid = getattr(km.provisioner, "pgid", None) if km.provisioner is not None else None
        if isinstance(pgid, int) and pgid > 0:
            groups.append(pgid)
    return groups
