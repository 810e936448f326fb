"""The agent widens the pipes it talks through (agent/pipes.py).

A stream crosses a pipe between each agent and its ssh or sshd; at 64 KiB (Linux's
default, pipe(7) "Pipe capacity") a 16 MiB frame wakes both ends 256 times.  A real agent
process started on plain pipes, as sshd starts it, must have raised both to 1 MiB by its
HELLO; the source agent's pipes to the ssh it starts for a direct push go through the same
call (agent/peer.py).  What only a real ESXi shows: whether its userworlds have
F_SETPIPE_SZ at all (on other systems the pipe stays as it is, which ``widen`` reports).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from vmigrate_lib.dataplane.agent import pipes
from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.transport import local_agent_argv

F_GETPIPE_SZ = 1032  # linux/fcntl.h


def test_a_pipe_is_widened_and_a_file_is_left_alone(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        assert fcntl.fcntl(w, F_GETPIPE_SZ) == 64 * 1024
        assert pipes.widen(r) == 1 << 20
        assert fcntl.fcntl(w, F_GETPIPE_SZ) == 1 << 20  # one pipe, both ends
    finally:
        os.close(r)
        os.close(w)
    with open(tmp_path / "f", "wb") as f:
        assert pipes.widen(f.fileno()) is None


def test_an_agent_on_plain_pipes_widens_both_before_its_hello(tmp_path: Path) -> None:
    argv, env = local_agent_argv(sys.executable, str(tmp_path))
    # plain pipes, as sshd gives (LocalTransport would widen them itself)
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        hello = json.dumps({"version": proto.PROTOCOL_VERSION}).encode()
        proc.stdin.write(proto.pack_frame(proto.HELLO, hello) + hello)
        ftype, _flags, _arg, _payload, _raw = proto.read_frame(proc.stdout)
        assert ftype == proto.HELLO
        assert fcntl.fcntl(proc.stdin.fileno(), F_GETPIPE_SZ) == 1 << 20
        assert fcntl.fcntl(proc.stdout.fileno(), F_GETPIPE_SZ) == 1 << 20
    finally:
        proc.kill()
        proc.wait()
