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
from ..agentchannel import AgentChannel
from ..client import AgentDatastore
from ..datastore import Datastore
from ..streamsummary import SUMMED, add_summary
from .transport import SshTransport


def ssh_transport(ds: Datastore) -> SshTransport | None:
    """How an agent datastore reached over SSH starts its agent (None: not over SSH)."""
    if isinstance(ds, AgentDatastore) and isinstance(ds.transport, SshTransport):
        return ds.transport
    return None


def direct_argv(src: SshTransport, dst: SshTransport) -> list[str]:
    """The command the source host runs to start ``dst``'s agent (OpenSSH client)."""
    d = dst.settings
    return src.settings.direct.argv(d.host, d.port, d.user, dst.remote_command())


def probe_direct(src: AgentDatastore, dst: Datastore) -> tuple[bool, str]:
    """Can the source host reach ``dst``'s host over SSH and start its agent there?"""
    src_t, dst_t = ssh_transport(src), ssh_transport(dst)
    if src_t is None:
        return False, "the source is not reached over SSH"
    if dst_t is None:
        return False, "the destination is not reached over SSH"
    try:
        # the probed peer stays up for this command's push (one ssh login fewer)
        r = src.call("probe_peer", argv=direct_argv(src_t, dst_t), keep=True)
    except AgentError as exc:
        return False, f"source agent cannot probe: {exc.message}"
    if r.get("ok"):
        return True, (f"{src_t.settings.host} reaches {dst_t.settings.address} "
                      f"(python {r['peer'].get('python')})")
    return False, (f"{src_t.settings.host} cannot start an agent on {dst_t.settings.address}: "
                   f"{r.get('message')}")


class DirectMode:
    """Direct mode for one source datastore: whether a pair goes direct, and the push.

    The source agent starts the destination's agent itself and streams into it;
    this machine steers over the source's channel and records the destination's
    acknowledgements.  In ``auto`` mode each peer is probed once (journaled as a
    ``mode`` event).
    """

    def __init__(self, src: AgentDatastore, transport: SshTransport) -> None:
        self.src = src
        self.transport = transport
        self.settings = transport.settings
        self.direct_ok: dict[tuple[str, int], bool] = {}  #: auto mode: probe result per peer

    def probe(self, dst: Datastore) -> tuple[bool, str]:
        """Can this host reach ``dst``'s host over SSH and start its agent there?"""
        return probe_direct(self.src, dst)

    def use_for(self, dst: Datastore) -> SshTransport | None:
        """``dst``'s transport when a copy to it goes direct (mode direct, or auto and the
        probe works), else None."""
        mode = self.settings.mode
        dst_t = ssh_transport(dst)
        if mode == "relay" or dst_t is None:
            return None
        if mode == "direct":
            return dst_t
        key = (dst_t.settings.host, dst_t.settings.port)
        if key not in self.direct_ok:
            ok, why = self.probe(dst)
            self.direct_ok[key] = ok
            self.src.channel.events.append(
                {"event": "mode", "mode": "direct" if ok else "relay", "why": why})
        return dst_t if self.direct_ok[key] else None

    def push(
        self,
        src_path: str,
        dst: Datastore,
        dst_path: str,
        extents: Sequence[Extent],
        *,
        checkpoint_bytes: int = 64 * 1024 * 1024,
        on_checkpoint: Callable[[int], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any] | None:
        """Direct mode: the source agent streams to the destination's agent itself.

        Returns None when direct mode is not in use for this pair (the caller
        relays); else the summary ``{"sent", "holes", "read", "wire"}``.  The
        extents must be sorted and disjoint (as the copier passes them).  A
        broken push resumes from the last offset the destination acknowledged.
        """
        dst_t = self.use_for(dst)
        if dst_t is None:
            return None
        settings = self.settings
        channel = self.src.channel
        channel.connect()
        if channel.codec_error is not None:  # a named codec the source lacks: say so
            raise channel.codec_error
        planned = sum(e.length for e in extents)
        remaining = list(extents)
        summary: dict[str, Any] = dict.fromkeys(SUMMED, 0)
        acked = 0
        done_before = 0
        retry = channel.retrying("direct push lost a connection", retry_if=resumable)
        for attempt in retry:
            lost = attempt.retried_after
            if isinstance(lost, AgentError):  # resume from the last acknowledged offset
                if lost.fields.get("agent_acked_offset"):
                    acked = max(acked, int(lost.fields["agent_acked_offset"]))
                done_before += sum(e.length for e in clip(remaining, 0, acked))
                remaining = clip(remaining, acked, 2**63)
                channel.events.append({"event": "resume", "what": "push", "path": src_path,
                                       "from_offset": acked})
                self.src.streamed = None  # cut differently after a resume: certify reads again
                dst_t_channel(dst).readback_got = None
            req: dict[str, Any] = {
                "op": "push", "path": src_path, "dest_path": dst_path,
                "extents": [[e.start, e.length] for e in remaining],
                "argv": direct_argv(self.transport, dst_t),
                # like the relay copier: checkpoints only when someone records them
                "checkpoint": checkpoint_bytes if on_checkpoint is not None else 2**62,
                **self.src.digest_options(),
            }
            back = dst_t_channel(dst).write_options().get("digest")
            if back:
                req["dest_digest"] = back
            if settings.compress:
                req["compress"] = settings.compress  # the agent picks for auto, refuses a lack
                hello = dst_t_channel(dst).hello
                offered = hello.get("compression")
                if offered is not None:  # the agent packs while the peer starts (checked)
                    req["peer_compression"] = offered
                    # the peer decodes one zstd stream across the push's frames
                    req["peer_zstream"] = proto.ZSTREAM_FEATURE in hello.get("features", [])
            if settings.bwlimit:
                req["bwlimit"] = settings.bwlimit
            with attempt:
                for ftype, payload, arg in channel.stream(req):
                    if ftype == proto.DIGESTS:
                        if arg == proto.DEST_DIGESTS:
                            dst_t_channel(dst).took_readback(payload)
                        else:
                            self.src.took_digests(payload)
                        continue
                    if ftype != proto.ACK:
                        raise AgentError(f"unexpected frame {ftype} in push stream",
                                         datastore=self.src.name)
                    acked = arg
                    retry.progressed()
                    if on_checkpoint is not None:
                        on_checkpoint(arg)
                    if on_progress is not None:
                        on_progress(done_before + sum(e.length for e in clip(remaining, 0, arg)),
                                    planned)
                add_summary(summary, channel.summary)
        return summary


def dst_t_channel(dst: Datastore) -> AgentChannel:
    """The channel of a direct push's destination (an agent datastore over SSH)."""
    assert isinstance(dst, AgentDatastore)
    return dst.channel


def resumable(exc: BaseException) -> bool:
    """A broken push that resumes from the last acknowledged offset: this machine lost
    the source agent, or the source agent lost the destination's (its ssh died); a full
    disk or a refused path do not."""
    return isinstance(exc, TransportError) or (
        isinstance(exc, AgentError) and bool(exc.fields.get("agent_peer"))
        and not isinstance(exc, NoSpaceLeft)
        and exc.fields.get("agent_errname") in (None, "", "EPIPE", "ECONNRESET"))


# --------------------------------------------------------------------------- preflight


@dataclass
class ModeCheck:
    mode: str
    ok: bool
    detail: str


def check_modes(src: Datastore, dst: Datastore, probe: bool = True) -> list[ModeCheck]:
    """Which data paths work between two datastores (changes nothing); direct mode only
    with ``probe`` (else its line says it was not probed)."""
    out: list[ModeCheck] = []
    try:
        src.free_space()
        dst.free_space()
        out.append(ModeCheck("relay", True, f"this machine reaches {src.name} and {dst.name}"))
    except AgentError as exc:
        out.append(ModeCheck("relay", False, exc.one_line()))
    if not probe:
        out.append(ModeCheck("direct", False, "not probed (relay is requested)"))
    elif isinstance(src, AgentDatastore):
        ok, why = probe_direct(src, dst)
        out.append(ModeCheck("direct", ok, why))
    else:
        out.append(ModeCheck("direct", False, "the source is not reached over SSH"))
    return out
