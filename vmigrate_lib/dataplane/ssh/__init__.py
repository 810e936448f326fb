"""The agent over SSH (paramiko): a tuned transport and a resilient datastore client.

    paramiko_lazy  paramiko at its first use, without invoke
    agentfile   the uploaded agent's private folder, checks and launch command
    connection  SshConnection: connect, host key verification, login, agent upload;
                shared_connection: one per host, shared by a process's datastores
    channel     raw channel reader/writer, RateLimiter (the bandwidth cap)
    transport   SshTransport: the agent zipapp on an exec channel (launched ahead),
                why an agent refused to start
    writer      ResilientWriter: replays unacknowledged chunks after a reconnect
    direct      DirectMode (the mode decision and the push), check_modes for preflight
    datastore   SshAgentDatastore: compression, bounded reconnects, resumable
                read/hash streams, read-ahead; composes the two above

Each module imports only those listed above it, so there is no import cycle.
paramiko itself loads at its first use (:mod:`.paramiko_lazy`, which also keeps
paramiko from importing invoke): a command whose agents come from a connection keeper
never loads it.
The writer, direct mode and the datastore talk to the agent through the
datastore's public :class:`~vmigrate_lib.dataplane.agentchannel.AgentChannel`
(frames, handshake, exclusive streams, reconnect pauses and events), never
through another object's private state.  ``tests/test_imports.py`` checks
both: no runtime import cycle, no private name used across modules.

:class:`SshAgentDatastore` adds what a long transfer over a network needs:

* compression (zstd or zlib, negotiated in HELLO; the agent needs only zlib);
* bounded reconnects with backoff: a read stream resumes after the last chunk
  it yielded (the source is a frozen snapshot, so re-reading is exact); a write
  stream keeps the chunks sent since the last acknowledged checkpoint and
  replays them after reconnecting (writes are positional, so replaying is
  idempotent) - nothing is written wrong, nothing acknowledged is lost;
* **direct mode**: the source agent starts the destination agent itself with
  OpenSSH and streams to it; this machine only steers and receives checkpoint
  acknowledgements.

The engine never imports this package; hosts build datastores through
:func:`vmigrate_lib.dataplane.open_ssh_datastore`.
"""

from __future__ import annotations

from ..sshconfig import DirectRoute, SshSettings
from .channel import RateLimiter
from .connection import SshConnection, fingerprint_sha256, shared_connection
from .datastore import SshAgentDatastore
from .direct import ModeCheck, check_modes
from .transport import SshTransport
from .writer import ResilientWriter

__all__ = [
    "DirectRoute", "ModeCheck", "RateLimiter", "ResilientWriter", "SshAgentDatastore",
    "SshConnection", "SshSettings", "SshTransport", "check_modes", "fingerprint_sha256",
    "open_ssh_datastore", "shared_connection",
]


def open_ssh_datastore(name: str, root: str, settings: SshSettings,
                       connection: SshConnection | None = None) -> SshAgentDatastore:
    """A datastore folder ``root`` on an SSH host, served by an uploaded agent, over
    ``connection`` or else this process's shared connection to that host
    (:func:`shared_connection`).  Its agent is launched at once, not waited for: the
    host starts it while the caller goes on (see :meth:`SshTransport.launch`)."""
    transport = SshTransport(settings, root, connection or shared_connection(settings))
    transport.launch()
    return SshAgentDatastore(name, transport)
