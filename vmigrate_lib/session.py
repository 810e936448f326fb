"""Open a migration from parameters: hosts, workspace, reporter, in one call.

This is the public entry point the CLI and the runbooks use; the engine itself
only sees the objects built here.
"""

from __future__ import annotations

from .audit.trustjournal import TrustJournal
from .control.factory import open_host
from .control.host import Host
from .engine.context import Migration
from .engine.progress import Reporter
from .engine.workspace import Workspace
from .params import MigrationParams
from .trust import TrustListener


def open_migration(params: MigrationParams, reporter: Reporter | None = None) -> Migration:
    """Connect both hosts (errors before any change) and load the workspace."""
    trust = TrustListener()  # peers accepted unverified from here on reach the journal
    try:
        source: Host = open_host(params.source)
        try:
            dest: Host = open_host(params.destination)
        except BaseException:
            source.close()
            raise
    except BaseException:
        trust.close()
        raise
    ws = Workspace(params.workspace)
    ws.journal = TrustJournal(ws.journal.path, trust)
    ws.load()
    return Migration(params=params, source=source, dest=dest, workspace=ws,
                     reporter=reporter or Reporter())


def close_migration(m: Migration) -> None:
    m.close()
    m.source.close()
    m.dest.close()
    if isinstance(m.workspace.journal, TrustJournal):
        m.workspace.journal.close()
