"""Direct mode (the source agent streams to the destination agent) and the mode checks.

In direct mode this machine only steers: the source host's agent starts the
destination's agent itself with OpenSSH (``DirectRoute`` in the settings) and
streams extents into it; the destination's checkpoint acknowledgements travel
back here so that a broken push resumes from the last durable offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import AgentError, NoSpaceLeft, TransportError
from ...extents import Extent, clip
from ..agent import protocol as proto
from ..datastore import Datastore
from .datastore import SshAgentDatastore


def direct_argv(src: SshAgentDatastore, dst: SshAgentDatastore) -> list[str]:
    """The command the source host runs to start ``dst``'s agent (OpenSSH client)."""
    d = dst.settings
    return src.settings.direct.argv(d.host, d.port, d.user, dst.transport.remote_command())


def probe_direct(src: SshAgentDatastore, dst: Datastore) -> tuple[bool, str]:
    """Can the source host reach ``dst``'s host over SSH and start its agent there?"""
    if not isinstance(dst, SshAgentDatastore):
        return False, "the destination is not reached over SSH"
    try:
        r = src.call("probe_peer", argv=direct_argv(src, dst))
    except AgentError as exc:
        return False, f"source agent cannot probe: {exc.message}"
    if r.get("ok"):
        return True, (f"{src.settings.host} reaches {dst.settings.address} "
                      f"(python {r['peer'].get('python')})")
    return False, (f"{src.settings.host} cannot start an agent on {dst.settings.address}: "
                   f"{r.get('message')}")


def use_direct(src: SshAgentDatastore, dst: Datastore) -> bool:
    """Does a copy from ``src`` to ``dst`` go direct (mode direct, or auto and the probe works)?"""
    mode = src.settings.mode
    if mode == "relay" or not isinstance(dst, SshAgentDatastore):
        return False
    if mode == "direct":
        return True
    key = (dst.settings.host, dst.settings.port)
    if key not in src.direct_ok:
        ok, why = probe_direct(src, dst)
        src.direct_ok[key] = ok
        src.events.append({"event": "mode", "mode": "direct" if ok else "relay", "why": why})
    return src.direct_ok[key]


def push_extents(
    src: SshAgentDatastore,
    src_path: str,
    dst: Datastore,
    dst_path: str,
    extents: Sequence[Extent],
    *,
    checkpoint_bytes: int = 64 * 1024 * 1024,
    on_checkpoint: Callable[[int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, int] | None:
    """Direct mode: the source agent streams to the destination's agent itself.

    Returns None when direct mode is not in use for this pair (the caller
    relays); else the summary ``{"sent", "holes", "read", "wire"}``.  The
    extents must be sorted and disjoint (as the copier passes them).  A
    broken push resumes from the last offset the destination acknowledged.
    """
    if not use_direct(src, dst):
        return None
    assert isinstance(dst, SshAgentDatastore)
    settings = src.settings
    planned = sum(e.length for e in extents)
    remaining = list(extents)
    summary = {"sent": 0, "holes": 0, "read": 0, "wire": 0}
    acked = 0
    done_before = 0
    attempt = 0
    while True:
        req: dict[str, Any] = {
            "op": "push", "path": src_path, "dest_path": dst_path,
            "extents": [[e.start, e.length] for e in remaining],
            "argv": direct_argv(src, dst),
            # like the relay copier: checkpoints only when someone records them
            "checkpoint": checkpoint_bytes if on_checkpoint is not None else 2**62,
        }
        if settings.compress:
            req["compress"] = "zlib" if settings.compress == "auto" else settings.compress
        if settings.bwlimit:
            req["bwlimit"] = settings.bwlimit
        try:
            for ftype, _payload, arg in src._stream(req):
                if ftype != proto.ACK:
                    raise AgentError(f"unexpected frame {ftype} in push stream", datastore=src.name)
                acked = arg
                attempt = 0
                if on_checkpoint is not None:
                    on_checkpoint(arg)
                if on_progress is not None:
                    on_progress(done_before + sum(e.length for e in clip(remaining, 0, arg)), planned)
            for key in summary:
                summary[key] += int(src.last_summary.get(key, 0))
            return summary
        except AgentError as exc:
            # the controller lost A, or A lost B (its ssh died): both resume from
            # the last acknowledged offset; a full disk or a refused path do not
            retryable = isinstance(exc, TransportError) or (
                bool(exc.fields.get("agent_peer")) and not isinstance(exc, NoSpaceLeft)
                and exc.fields.get("agent_errname") in (None, "", "EPIPE", "ECONNRESET"))
            if not retryable:
                raise
            if exc.fields.get("agent_acked_offset"):
                acked = max(acked, int(exc.fields["agent_acked_offset"]))
            done = sum(e.length for e in clip(remaining, 0, acked))
            done_before += done
            remaining = clip(remaining, acked, 2**63)
            attempt += 1
            src._pause(attempt, exc, "direct push lost a connection")
            src.events.append({"event": "resume", "what": "push", "path": src_path,
                               "from_offset": acked})


# --------------------------------------------------------------------------- preflight


@dataclass
class ModeCheck:
    mode: str
    ok: bool
    detail: str


def check_modes(src: Datastore, dst: Datastore) -> list[ModeCheck]:
    """Which data paths work between two datastores (changes nothing)."""
    out: list[ModeCheck] = []
    try:
        src.free_space()
        dst.free_space()
        out.append(ModeCheck("relay", True, f"this machine reaches {src.name} and {dst.name}"))
    except AgentError as exc:
        out.append(ModeCheck("relay", False, exc.one_line()))
    if isinstance(src, SshAgentDatastore):
        ok, why = probe_direct(src, dst)
        out.append(ModeCheck("direct", ok, why))
    else:
        out.append(ModeCheck("direct", False, "the source is not reached over SSH"))
    return out
