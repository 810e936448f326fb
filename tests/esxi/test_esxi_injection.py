"""Names with spaces, quotes, ``$``, ``;``, backquotes and a leading ``-`` reach ESXi's
commands as one unchanged word each, and nothing else runs.

Proves it twice against real parts: the command line :func:`command_line` builds is
split back by busybox ``ash`` (ESXi's shell) into exactly the argv given; and snapshot
names and descriptions travel through a real sshd whose login shell is busybox to the
peer's ``vim-cmd``, which logs the argv it received, then come back through
``snapshot.get`` and the parser unchanged, while a canary file that any injected
command would create never appears.  Words no quoting carries safely (control
characters) are refused before anything runs.  What only a real ESXi host shows: how
its own vim-cmd treats a name that begins with ``-`` (a guess: options are read before
the command path only, so operands are never options).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.esxi.conftest import EsxiLab
from vmigrate_lib.control.esxi.shell import check_word, command_line
from vmigrate_lib.errors import UnsafeShellArgument

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def nasty(canary: Path) -> list[str]:
    return ["vmigrate-a b", "vmigrate-'q\"uote'", f"vmigrate-$(touch {canary})",
            f"vmigrate-;touch {canary};", "-vmigrate-lead", f"vmigrate-`touch {canary}`",
            "vmigrate-*", "vmigrate-\\n\\$HOME", "vmigrate-é ünïcode", ""]


def test_busybox_ash_splits_the_line_back_into_the_same_words(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    words = nasty(canary)
    line = command_line(["printf", "%s\\0", *words])
    out = subprocess.run([BUSYBOX, "sh", "-c", line], capture_output=True, check=True,
                         cwd=tmp_path).stdout
    assert out.decode().split("\0")[:-1] == words
    assert not canary.exists()


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", "tab\there", "bell\x07", "del\x7f"])
def test_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeShellArgument) as info:
        command_line(["vim-cmd", "vmsvc/snapshot.create", "1", bad])
    assert bad not in info.value.message  # the value itself is never echoed
    assert check_word("fine name") == "fine name"


def test_names_round_trip_through_sshd_and_vim_cmd(esxi_lab: EsxiLab, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    # the shell's side is proven word by word above; through sshd, one name per danger
    names = [n for n in nasty(canary)[:6]]
    with esxi_lab.host() as h:
        for name in names:
            desc = f"about {name}"
            snap = h.create_snapshot("alice", name, desc)
            assert (snap.name, snap.description) == (name, desc)
            assert [s.name for s in esxi_lab.lab.host().list_snapshots("alice")] == [name]
            h.remove_snapshot("alice", snap.id)
        with pytest.raises(UnsafeShellArgument):
            h.create_snapshot("alice", "two\nlines")
    creates = [c for c in esxi_lab.peer.calls() if c[1:2] == ["vmsvc/snapshot.create"]]
    assert [c[3:] for c in creates] == [[n, f"about {n}", "0", "0"] for n in names]
    assert {c[0] for c in esxi_lab.peer.calls()} == {"vim-cmd"}
    assert not canary.exists()
