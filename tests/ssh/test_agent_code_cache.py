"""The agent's launcher runs the agent from compiled code it keeps beside the agent file.

A zipapp's modules are compiled at every import (zipimport writes no bytecode): ~0.03 s of
each agent start here (launcher to HELLO 0.090 -> 0.058 s median, python 3.11, measured),
and every command starts 2-4 agents.  The launcher now keeps the compiled modules in
``<agent file>.<cache tag>.code`` in the same private 0700 folder, tied to the agent's
SHA-256 and the exact python version, and checked like the agent file (regular file, the
login's own, not writable by others); the agent file's digest is still checked first at
every start.  These tests run the launcher script as the host runs it (``python3 -c
LAUNCH_SCRIPT path sha256 --root ...``), here with this machine's python3.

What only a real ESXi host would show: its python3 (3.5 to 3.11) and how long its own
compile takes; the script's Python 3.5 syntax is checked in test_agent_upload.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.ssh.agentfile import LAUNCH_SCRIPT, REFUSED
from vmigrate_lib.dataplane.transport import agent_zipapp

PY3 = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"


@pytest.fixture(name="agent")
def agent_fixture(tmp_path: Path) -> Path:
    """The agent file installed in a private 0700 folder, as the install script leaves it."""
    d = tmp_path / "vmigrate-root"
    d.mkdir(mode=0o700)
    (tmp_path / "ds").mkdir()
    path = d / "vmigrate-agent-x.pyz"
    path.write_bytes(agent_zipapp()[0])
    path.chmod(0o600)
    return path


def cache_of(agent: Path) -> Path:
    tag = subprocess.run([PY3, "-c", "import sys; print(sys.implementation.cache_tag)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return agent.with_name(f"{agent.name}.{tag}.code")


def hello(agent: Path) -> tuple[int, dict[str, object] | None, str]:
    """Start the agent through the launcher; (exit status, its HELLO or None, stderr)."""
    sha = hashlib.sha256(agent.read_bytes()).hexdigest()
    p = subprocess.Popen([PY3, "-c", LAUNCH_SCRIPT, str(agent), sha, "--root",
                          str(agent.parent.parent / "ds")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    v = b'{"version": %d}' % proto.PROTOCOL_VERSION
    out, err = p.communicate(proto.pack_frame(proto.HELLO, v) + v, timeout=60)
    got = None
    if len(out) > proto.HEADER_SIZE:
        import io
        ftype, _flags, _arg, payload, _raw = proto.read_frame(io.BytesIO(out))
        if ftype == proto.HELLO:
            import json
            got = json.loads(payload)
    return p.returncode, got, err.decode()


def plant(cache: Path, tag: str, mode: int = 0o600) -> None:
    """A cache whose agent says it came from the cache (its HELLO carries ``cached``)."""
    server = "import sys\nfrom vmigrate_agent import server\nserver.FEATURES.append('cached')\n" \
        "sys.exit(server.main())\n"
    codes = {"__main__.py": compile(server, "main", "exec")}
    import zipfile
    with zipfile.ZipFile(cache.with_name(cache.name.split(".cpython")[0])) as z:
        for n in z.namelist():
            if n.endswith(".py") and n != "__main__.py":
                codes[n] = compile(z.read(n), n, "exec")
    cache.write_bytes(marshal.dumps((tag, codes)))
    cache.chmod(mode)


def tag_for(agent: Path) -> str:
    version = subprocess.run([PY3, "-c", "import sys; print(sys.version, end='')"],
                             capture_output=True, text=True, check=True).stdout
    return hashlib.sha256(agent.read_bytes()).hexdigest() + ":" + version


def test_first_start_keeps_the_compiled_agent_and_the_next_runs_it(agent: Path) -> None:
    """Before: no file beside the agent, every start compiled the zip's modules again."""
    rc, got, err = hello(agent)
    assert rc == 0 and got is not None, err
    cache = cache_of(agent)
    assert cache.exists(), os.listdir(agent.parent)
    st = cache.stat()
    assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    assert marshal.loads(cache.read_bytes())[0] == tag_for(agent)
    plant(cache, tag_for(agent))  # the next start runs what the cache holds
    rc, got, err = hello(agent)
    assert rc == 0 and got is not None and "cached" in got["features"], (got, err)  # type: ignore[operator]


@pytest.mark.parametrize("case", ["other agent", "other python", "writable by others"])
def test_a_cache_not_this_agents_is_not_run(agent: Path, case: str) -> None:
    """A cache of another agent version or python, or one others could have written, is
    compiled again (and replaced), never run."""
    cache = cache_of(agent)
    tag = {"other agent": "0" * 64 + ":" + "x",
           "other python": tag_for(agent) + " (other build)"}.get(case, tag_for(agent))
    plant(cache, tag, 0o666 if case == "writable by others" else 0o600)
    rc, got, err = hello(agent)
    assert rc == 0 and got is not None and "cached" not in got["features"], (got, err)  # type: ignore[operator]
    assert marshal.loads(cache.read_bytes())[0] == tag_for(agent)
    assert cache.stat().st_mode & 0o777 == 0o600


def test_the_agent_digest_is_checked_before_the_cache(agent: Path) -> None:
    """A cache cannot stand for a changed agent file: the digest check refuses first."""
    assert hello(agent)[0] == 0
    sha = hashlib.sha256(agent.read_bytes()).hexdigest()
    data = agent.read_bytes()
    agent.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the file changed after upload
    p = subprocess.run([PY3, "-c", LAUNCH_SCRIPT, str(agent), sha, "--root",
                        str(agent.parent.parent / "ds")], capture_output=True, text=True,
                       timeout=60, check=False, input="")
    assert p.returncode == REFUSED and "sha256" in p.stderr, (p.returncode, p.stderr)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
