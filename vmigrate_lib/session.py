"""Open a migration from parameters: hosts, workspace, reporter, in one call.

This is the public entry point the CLI and the runbooks use; the engine itself
only sees the objects built here.
"""

from __future__ import annotations

from .control.factory import open_host
from .control.host import Host
from .engine.context import Migration
from .engine.progress import Reporter
from .engine.workspace import Workspace
from .params import MigrationParams


def open_migration(params: MigrationParams, reporter: Reporter | None = None) -> Migration:
    """Connect both hosts (errors before any change) and load the workspace."""
    source: Host = open_host(params.source)
    try:
        dest: Host = open_host(params.destination)
    except BaseException:
        source.close()
        raise
    ws = Workspace(params.workspace)
    ws.load()
    return Migration(params=params, source=source, dest=dest, workspace=ws,
                     reporter=reporter or Reporter())


def close_migration(m: Migration) -> None:
    m.close()
    m.source.close()
    m.dest.close()
