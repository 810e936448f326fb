"""Open a migration from parameters: hosts, workspace, reporter, in one call.

This is the public entry point the CLI and the runbooks use; the engine itself
only sees the objects built here.
"""

from __future__ import annotations

import contextlib

from .audit.trustjournal import TrustJournal
from .control.factory import open_host
from .control.host import Host
from .engine.context import Migration
from .engine.progress import Reporter
from .engine.workspace import Workspace
from .params import MigrationParams
from .trust import TrustListener


def open_migration(params: MigrationParams, reporter: Reporter | None = None) -> Migration:
    """Connect both hosts (errors before any change) and load the workspace; whatever was
    opened is closed again when a later step fails (a workspace that cannot be read must
    not leave two host connections behind)."""
    with contextlib.ExitStack() as undo:
        trust = TrustListener()  # peers accepted unverified from here on reach the journal
        undo.callback(trust.close)
        source: Host = open_host(params.source)
        undo.callback(source.close)
        dest: Host = open_host(params.destination)
        undo.callback(dest.close)
        ws = Workspace(params.workspace)
        ws.journal = TrustJournal(ws.journal.path, trust)
        ws.load()
        undo.pop_all()
    return Migration(params=params, source=source, dest=dest, workspace=ws,
                     reporter=reporter or Reporter())


def close_migration(m: Migration) -> None:
    """Close the data plane's handles, both hosts and the journal: each one even when an
    earlier one fails to close (the first failure is raised, after all of them)."""
    with contextlib.ExitStack() as stack:
        if isinstance(m.workspace.journal, TrustJournal):
            stack.callback(m.workspace.journal.close)
        stack.callback(m.dest.close)
        stack.callback(m.source.close)
        stack.callback(m.close)
