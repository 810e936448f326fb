"""Which folder may be a workspace: one vmigrate owns, or a new or empty one.

The workspace receives ``state.json``, the journal, a lock and the evidence, and
is made private (0700).  Given ``/``, somebody's non-empty folder or a datastore,
vmigrate would mix its files with others' and lock their owner out; so the
choice is checked with the parameters, before anything is written.  Reads only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ParameterError

#: What vmigrate puts in a workspace (engine/workspace.py and the runner).
OWN_NAMES = frozenset({"state.json", "journal.jsonl", ".lock", "evidence", "audit"})
_OWN_PREFIXES = (".state.json.", ".vmigrate")
#: ESXi mounts its datastores here (VMware vSphere Storage: /vmfs/volumes/<datastore>).
ESXI_DATASTORES = Path("/vmfs/volumes")
_HINT = ("name a new or empty folder (e.g. workspaces/<vm>), or the workspace this "
         "migration already uses")


def _is_own_state(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "migration_id" in state and "version" in state


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_workspace(workspace: Path, lab_roots: Iterable[Path] = (),
                    datastore_roots: Iterable[Path] = ()) -> None:
    """Raise :class:`ParameterError` unless ``workspace`` is vmigrate's, empty or new.

    ``lab_roots``: the lab folders of lab hosts; ``datastore_roots``: where real
    hosts' datastores are mounted.  Paths are compared after resolving symlinks.
    """
    real = Path(os.path.realpath(workspace))
    shown = str(workspace)[:200]
    for root in lab_roots:
        if _inside(real, Path(os.path.realpath(root))):
            raise ParameterError(f"workspace {shown} is inside the lab's folder {root}",
                                 hint="keep the workspace beside the lab, e.g. workspaces/<vm>",
                                 parameter="workspace")
    for root in datastore_roots:
        if _inside(real, Path(os.path.realpath(root))):
            raise ParameterError(f"workspace {shown} is inside a datastore ({root})",
                                 hint="keep the workspace on the machine that runs vmigrate, "
                                 "e.g. workspaces/<vm>", parameter="workspace")
    probe = real
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ParameterError(f"workspace {shown} is not a folder ({probe} is a file)",
                             hint=_HINT, parameter="workspace")
    if probe != real:
        return  # a new folder
    if (real / "state.json").is_file() and _is_own_state(real / "state.json"):
        return
    try:
        with os.scandir(real) as it:
            others = [e.name for e, _ in zip(it, range(10_000))
                      if e.name not in OWN_NAMES and not e.name.startswith(_OWN_PREFIXES)]
    except OSError as exc:
        raise ParameterError(f"cannot read workspace {shown}: {exc.strerror}",
                             hint="check its permissions", parameter="workspace") from exc
    if others or real == Path("/"):
        looks = any(n.endswith((".vmx", ".vmdk")) for n in others)
        raise ParameterError(
            f"workspace {shown} is not a folder vmigrate created"
            + (" (it looks like a datastore or VM folder)" if looks else
               f" (it holds {len(others)} other entr{'y' if len(others) == 1 else 'ies'})"),
            hint=_HINT, parameter="workspace")
