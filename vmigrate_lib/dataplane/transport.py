"""How the client reaches an agent: a byte pipe to its stdin/stdout.

Locally the agent is a child process (``python -m vmigrate_lib.dataplane.agent``);
over SSH it is an exec channel running the agent package as one zipapp
(:func:`agent_zipapp`).  The client code above is the same for both.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import IO, cast

from ..errors import TransportError, VmigrateError
from .agent.pipes import widen

AGENT_PACKAGE = Path(__file__).with_name("agent")
#: The agent package's name inside the zipapp (its imports are relative).
ZIPAPP_PACKAGE = "vmigrate_agent"
_ZIP_MAIN = (
    "import sys\n"
    f"from {ZIPAPP_PACKAGE}.server import main\n"
    "sys.exit(main())\n"
)


@functools.cache
def agent_zipapp() -> tuple[bytes, str]:
    """The agent package as a zipapp, and the first 16 hex digits of its SHA-256.

    Deterministic (sorted names, fixed timestamps and modes, stored uncompressed),
    so that the same agent code always gives the same bytes, hence the same
    upload name on the host.
    """
    files = {f"{ZIPAPP_PACKAGE}/{p.name}": p.read_bytes()
             for p in AGENT_PACKAGE.glob("*.py")}
    files["__main__.py"] = _ZIP_MAIN.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever builds it
            zf.writestr(info, files[name])
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()[:16]


def local_agent_argv(python: str, root: str) -> tuple[list[str], dict[str, str]]:
    """Command and environment that run the agent package from this installation."""
    env = dict(os.environ)
    site = str(AGENT_PACKAGE.parents[2])  # the folder holding vmigrate_lib
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH", "")) if p)
    return [python, "-m", "vmigrate_lib.dataplane.agent", "--root", root], env


class Transport(abc.ABC):
    """A started agent's two byte streams."""

    description: str

    @abc.abstractmethod
    def start(self) -> tuple[IO[bytes], IO[bytes]]:
        """Start the agent; returns (reader from agent, writer to agent)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def diagnostics(self) -> str:
        """What the agent said on stderr, for an error message."""

    def restart(self) -> bool:
        """After a failed start: whether something was put right (an agent file installed)
        so that one more start may work; False (the default): nothing to do."""
        return False

    def failed_start(self, exc: TransportError, datastore: str) -> VmigrateError | None:
        """A clearer error when ``exc`` means the agent refused to start, not a lost network.

        Called when starting the agent or its handshake failed, after
        :meth:`diagnostics`; ``None`` keeps ``exc`` (a reconnect may help).
        """
        return None


#: Pipe and buffer size for local agents (the kernel default is 64 KiB).
PIPE_SIZE = 1 << 20


class LocalTransport(Transport):
    """The agent as a child process on this machine, serving a local folder."""

    def __init__(self, root: str, python: str | None = None) -> None:
        self.root = root
        self.python = python or sys.executable
        self.description = f"local agent on {root}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def start(self) -> tuple[IO[bytes], IO[bytes]]:
        self.close()
        self._stderr = tempfile.TemporaryFile()
        argv, env = local_agent_argv(self.python, self.root)
        try:
            self._proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
            )
        except OSError as exc:
            raise TransportError(
                f"cannot start the data-plane agent: {exc}", root=self.root
            ) from exc
        assert self._proc.stdout is not None and self._proc.stdin is not None
        for pipe in (self._proc.stdin, self._proc.stdout):
            widen(pipe.fileno(), PIPE_SIZE)  # Linux: fewer context switches
        # buffered both ways: a frame header is not a syscall of its own
        # bufsize=0 gave raw FileIO pipes
        reader = io.BufferedReader(cast(io.FileIO, self._proc.stdout), PIPE_SIZE)
        writer = io.BufferedWriter(cast(io.FileIO, self._proc.stdin), PIPE_SIZE)
        return reader, writer

    def diagnostics(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip()[-2000:]

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
