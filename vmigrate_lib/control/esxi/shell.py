"""ESXi's own commands over the SSH connection the data plane already holds.

A command is an argv, never a string: each word is checked
(:func:`check_word`) and quoted with :func:`shlex.quote` into one POSIX command
line, which ESXi's busybox ``ash`` splits back into exactly those words.  Single
quotes keep spaces, ``"``, ``$``, ``;``, `````, ``*`` and ``\\`` literal; what no
quoting can carry safely through a shell and vim-cmd's own line handling
(NUL, newline and other control characters) is refused before anything runs.
A word that begins with ``-`` stays one word; each caller puts such words where
the command takes an operand (vim-cmd reads options only before its command
path; vmkfstools is given absolute paths).
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ...dataplane.ssh import SshConnection
from ...dataplane.ssh.paramiko_lazy import paramiko
from ...errors import (
    LicenseRestricted,
    PowerError,
    TimeoutExpired,
    ToolsUnavailable,
    TransportError,
    UnsafeShellArgument,
    VimCmdError,
    VmigrateError,
    VmNotFound,
)
from .vimcmd import VimCmdFault, find_fault

log = logging.getLogger("vmigrate.esxi")

#: A VM or snapshot name, a path: ESXi caps display names at 80 characters and paths
#: at PATH_MAX; this bound only keeps a command line sane.
MAX_WORD = 4096


def check_word(word: str, what: str = "argument") -> str:
    """``word`` if a shell can carry it unchanged, else :class:`UnsafeShellArgument`
    (the message says which character, never repeats the value: it may be pasted)."""
    if len(word) > MAX_WORD:
        raise UnsafeShellArgument(f"{what} is longer than {MAX_WORD} characters", what=what)
    for ch in word:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise UnsafeShellArgument(
                f"{what} holds the control character U+{ord(ch):04X}, which cannot be passed "
                "safely to a command on the ESXi host", what=what, char=f"U+{ord(ch):04X}")
    return word


def command_line(argv: Sequence[str]) -> str:
    """The POSIX command line that runs ``argv`` word for word."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(shlex.quote(check_word(w)) for w in argv)


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        """The command as one would type it (for messages)."""
        return command_line(self.argv)


class EsxiShell:
    """Runs commands on one ESXi host over an :class:`SshConnection` (one exec channel
    per command, as ``ssh host cmd`` does)."""

    def __init__(self, conn: SshConnection, timeout: float = 600.0) -> None:
        self.conn = conn
        self.timeout = timeout
        self.ran: list[tuple[str, ...]] = []  #: every argv run, in order (journal, tests)

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> Result:
        """Run ``argv``; its exit status and output, whatever they are."""
        cmd = command_line(argv)
        host = self.conn.settings.host
        wait = self.timeout if timeout is None else timeout
        self.ran.append(tuple(argv))
        start = time.monotonic()
        try:
            chan = self.conn.transport().open_session()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransportError(f"cannot run {argv[0]} on {host}: {exc}", host=host) from exc
        try:
            chan.settimeout(wait)
            chan.exec_command(cmd)
            out = chan.makefile("rb").read()
            err = chan.makefile_stderr("rb").read()
            rc = chan.recv_exit_status()
        except TimeoutError as exc:  # socket.timeout
            raise TimeoutExpired(f"{shlex.join(argv[:2])} on {host} did not finish within "
                                 f"{wait:.0f} s", host=host, timeout=wait) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransportError(f"{argv[0]} on {host} lost its connection: {exc}",
                                 host=host) from exc
        finally:
            chan.close()
        log.debug("%s: exit %s in %.2fs", cmd, rc, time.monotonic() - start)
        return Result(tuple(argv), rc, out.decode("utf-8", "replace"),
                      err.decode("utf-8", "replace"))

    def vim_cmd(self, path: str, *args: str, timeout: float | None = None) -> Result:
        """``vim-cmd <path> <args>``: a fault it prints, or a non-zero exit, is an
        error (:func:`fault_error` says which)."""
        r = self.run(["vim-cmd", path, *args], timeout=timeout)
        fault = find_fault(r.shown, r.stdout + "\n" + r.stderr)
        if fault is not None:
            raise fault_error(r, fault)
        if r.rc != 0:
            raise VimCmdError(f"{r.shown} failed on {self.conn.settings.host} (exit {r.rc}): "
                              f"{(r.stderr or r.stdout).strip()[:300]}",
                              command=r.shown, rc=r.rc)
        return r


def fault_error(r: Result, fault: VimCmdFault) -> VmigrateError:
    """A fault printed by vim-cmd as vmigrate's error (the fault name is kept)."""
    text = f"{r.shown} failed: {fault.name}: {fault.msg or '(no message)'}"
    fields = {"command": r.shown, "fault": fault.name}
    if fault.name == "NotFound":
        return VmNotFound(text, hint="the VM was unregistered or its id changed: run again "
                          "(vmigrate looks it up by name each time)", **fields)
    if fault.name == "ToolsUnavailable":
        return ToolsUnavailable(text, **fields)
    if fault.name == "InvalidPowerState":
        return PowerError(text, **fields)
    if fault.name == "RestrictedVersion":
        return LicenseRestricted(text, **fields)
    return VimCmdError(text, **fields)


__all__ = ["MAX_WORD", "EsxiShell", "Result", "check_word", "command_line", "fault_error"]
