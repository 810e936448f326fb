"""What the direct-push unit tests share: a source and a destination folder, the
destination's agent started as a real process behind a shell (standing for the ssh login
on the destination host), and the client's side of the source agent's stdout."""

from __future__ import annotations

import io
import shlex
import sys
import threading
from pathlib import Path

from vmigrate_lib.dataplane.agent import protocol as proto

REPO = Path(__file__).resolve().parents[2]


def two_roots(tmp_path: Path) -> tuple[Path, Path]:
    """The source's and the destination's datastore folders."""
    src, dst = tmp_path / "a", tmp_path / "b"
    src.mkdir()
    dst.mkdir()
    return src, dst


def peer_argv(dst: Path, before: str = "", after: str = "") -> list[str]:
    """The peer command: shell ``before``, the agent on ``dst`` (exec'd unless ``after``
    must run once it exits), then ``after``."""
    agent = " ".join(shlex.quote(w) for w in (
        sys.executable, "-m", "vmigrate_lib.dataplane.agent", "--root", str(dst)))
    run = f"cd {shlex.quote(str(REPO))} && " + (f"{agent}; {after}" if after else f"exec {agent}")
    return ["sh", "-c", f"{before}; {run}" if before else run]


def gate_wait(gate: Path) -> str:
    """A shell loop that waits until the file ``gate`` exists."""
    return f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done"


class FrameSink:
    """The client's side of the source agent's stdout: frames as written, and how many
    parts the last flush handed over."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.flushed = 0
        self.lock = threading.Lock()

    def write(self, b: bytes) -> int:
        with self.lock:
            self.parts.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        with self.lock:
            self.flushed = len(self.parts)

    def frames(self) -> list[int]:
        """The types of the frames flushed so far."""
        with self.lock:
            data = b"".join(self.parts[:self.flushed])
        r, types = io.BytesIO(data), []
        while r.tell() < len(data):
            types.append(proto.read_frame(r)[0])
        return types
