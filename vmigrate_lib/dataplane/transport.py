"""How the client reaches an agent: a byte pipe to its stdin/stdout.

Locally the agent is a child process; over SSH (a later transport) it is an exec
channel.  The client code above is the same for both.
"""

from __future__ import annotations

import abc
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from ..errors import TransportError

AGENT_FILE = Path(__file__).with_name("agent.py")


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
        try:
            self._proc = subprocess.Popen(
                [self.python, str(AGENT_FILE), "--root", self.root],
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
        return self._proc.stdout, self._proc.stdin

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
