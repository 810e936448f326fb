"""The vSphere API simulator (govmomi) as a test peer: build it, run it.

    from tests.peers.vcsim import build_vcsim, run_vcsim

    with run_vcsim(model="esx", qcda_cmd=qcda_command(extents_json)) as sim:
        si = SmartConnect(host=sim.host, port=sim.port, user=sim.user,
                          pwd=sim.password, disableSslCertValidation=True)

See tests/peers/README.md for what the simulator does and does not do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers.orphans import die_with_parent

PEERS = Path(__file__).resolve().parent
REPO = PEERS.parent.parent
BUILD_SCRIPT = PEERS / "build_vcsim.sh"
QCDA_SCRIPT = PEERS / "qcda_json.py"
DEFAULT_BINARY = PEERS / "bin" / "vcsim"

DEFAULT_USER = "vmigrate"
DEFAULT_PASSWORD = "vmigrate-test-pw"

#: build_vcsim.sh exit status meaning "Go or govmomi is not installed".
UNAVAILABLE_RC = 3

_built: Path | None = None


class VcsimUnavailable(RuntimeError):
    """Go or Debian's govmomi source is missing: the peer cannot be built."""


@dataclass
class VcsimInfo:
    url: str
    host: str
    port: int
    user: str
    password: str
    proc: subprocess.Popen[bytes]
    model: str = "esx"
    ready: dict[str, Any] = field(default_factory=dict)  # the whole ready line
    log_path: Path | None = None  # simulator's stderr

    def control(self, **request: Any) -> None:
        """Change the simulated host the way only a real host's history would
        (``op="disk"``: put a disk on a delta; ``op="slow"``: removals that keep
        running); see tests/peers/README.md.  Raises on a refused request."""
        import ssl
        import urllib.request

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        scheme = "https" if self.url.startswith("https") else "http"
        req = urllib.request.Request(
            f"{scheme}://{self.host}:{self.port}/vmigrate-test",
            data=json.dumps(request).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            resp.read()

    def log_tail(self, n: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-n:]


def _skip_or_raise(reason: str) -> None:
    try:
        import pytest
    except ImportError:  # pragma: no cover - used outside pytest
        raise VcsimUnavailable(reason) from None
    pytest.skip(reason)


def build_vcsim(output: Path | None = None) -> Path:
    """Build (or reuse) the simulator binary and return its path.

    Under pytest, skips the calling test with the reason when Go or
    golang-github-vmware-govmomi-dev is missing; a real build error fails.
    """
    global _built
    out = Path(output) if output else DEFAULT_BINARY
    if _built == out and out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time across processes (pytest-xdist workers): go build replaces a
    # stale binary in place, which another worker could be starting at that moment;
    # after the first build the others find it up to date and leave it as it is.
    with open(out.parent / ".build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            ["sh", str(BUILD_SCRIPT), str(out)],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode == UNAVAILABLE_RC:
        _skip_or_raise("vSphere simulator peer unavailable: " + proc.stderr.strip())
    if proc.returncode != 0:
        raise RuntimeError(
            f"build_vcsim.sh failed (rc={proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    _built = out
    return out


def qcda_command(source_json: Path | str) -> str:
    """The -qcda-cmd that answers QueryChangedDiskAreas from a JSON file
    (format: tests/peers/qcda_json.py)."""
    return shlex.join([sys.executable, str(QCDA_SCRIPT), str(source_json)])


@contextlib.contextmanager
def run_vcsim(
    model: str = "esx",
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    qcda_cmd: str | None = None,
    tls: bool = True,
    binary: Path | None = None,
    ready_timeout: float = 30.0,
    restrict_file: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[VcsimInfo]:
    """Start a simulator on 127.0.0.1 (free port), yield once it is ready,
    stop it on exit. user="" accepts any non-empty credentials.
    ``restrict_file``: methods listed there (one a line, read at every call)
    are refused as by a free ESXi licence (RestrictedVersion).  ``extra_args``: more
    flags of the Go peer (e.g. ``-licence-edition free``)."""
    exe = binary or build_vcsim()
    args = [
        str(exe),
        "-model",
        model,
        "-listen",
        "127.0.0.1:0",
        "-user",
        user,
        "-password",
        password,
    ]
    if tls:
        args.append("-tls")
    if qcda_cmd:
        args += ["-qcda-cmd", qcda_cmd]
    if restrict_file is not None:
        args += ["-restrict-file", str(restrict_file)]
    args += list(extra_args)

    fd, log_name = tempfile.mkstemp(prefix="vcsim-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    try:
        ready = _wait_ready(proc, ready_timeout, log_path)
        yield VcsimInfo(
            url=ready["url"],
            host=ready["host"],
            port=int(ready["port"]),
            user=user,
            password=password,
            proc=proc,
            model=model,
            ready=ready,
            log_path=log_path,
        )
    finally:
        _stop(proc)
        assert proc.stdout is not None
        proc.stdout.close()
        log_path.unlink(missing_ok=True)


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float, log_path: Path) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if sel.select(min(left, 0.5)):
                line = proc.stdout.readline()
                if not line:
                    break  # exited
                try:
                    ready: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                if "url" in ready:
                    return ready
            elif proc.poll() is not None:
                break
    _stop(proc)
    raise RuntimeError(
        f"vcsim not ready within {timeout:.0f}s (rc={proc.returncode}); log:\n"
        + log_path.read_text(errors="replace")[-4000:]
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
