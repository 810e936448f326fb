"""The one retry loop of the data plane (``vmigrate_lib/dataplane/retry.py``).

Every SSH reconnect (requests, read/hash/write streams, direct push) runs through
``Retrying``; these tests pin what those loops relied on when each had its own copy:
attempts counted and bounded, the pause doubled and capped, a failure after progress
counted from one again, only the errors the caller names retried, the give-up error
built by the caller, and interrupts passing straight through.  The clock and the
sleep are the constructor's parameters, so no test waits.  The last two tests lose
a real local agent process (SIGKILL) and fail to start one (no such interpreter).

Before the module existed every test here failed at the import.  Whether a real
ESXi host's sshd drops or refuses connections the same way is not shown here;
tests/ssh/test_faults.py kills real OpenSSH sessions mid-copy.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from vmigrate_lib.dataplane.agentchannel import AgentChannel
from vmigrate_lib.dataplane.client import AgentDatastore
from vmigrate_lib.dataplane.retry import RetryEvent, Retrying, RetryPolicy
from vmigrate_lib.dataplane.transport import LocalTransport
from vmigrate_lib.errors import AgentError, TransportError


class FakeTime:
    """Records the pauses instead of sleeping; the clock moves by what was slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def fresh() -> tuple[FakeTime, list[RetryEvent]]:
    return FakeTime(), []


def lost(n: int) -> TransportError:
    return TransportError(f"lost connection #{n}", datastore="ds")


def make(policy: RetryPolicy, t: FakeTime, events: list[RetryEvent], **kw: object) -> Retrying:
    return Retrying(policy, "read stream lost its connection", on_retry=events.append,
                    sleep=t.sleep, clock=t.clock, **kw)  # type: ignore[arg-type]


def test_attempts_are_counted_and_the_pause_doubles_up_to_its_cap() -> None:
    t, events = fresh()
    retry = make(RetryPolicy(retries=5, backoff=1.0, backoff_max=3.0), t, events)
    calls: list[int] = []

    def op() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= 4:
            raise lost(len(calls))
        return "done"

    assert retry.call(op) == "done"
    assert calls == [1, 2, 3, 4, 5]
    assert t.pauses == [1.0, 2.0, 3.0, 3.0]  # doubled, then capped at backoff_max
    assert [e.attempt for e in events] == [1, 2, 3, 4]
    assert all(e.retries == 5 and e.what == "read stream lost its connection" for e in events)
    assert [e.error.args[0] for e in events] == [f"lost connection #{i}" for i in range(1, 5)]
    assert [e.at for e in events] == [1000.0, 1001.0, 1003.0, 1006.0]  # before each pause


def test_out_of_retries_raises_what_the_caller_builds_from_the_last_error() -> None:
    t, events = fresh()
    built: list[tuple[str, str, int]] = []

    def gave_up(what: str, exc: BaseException, retries: int) -> TransportError:
        built.append((what, exc.args[0], retries))
        return TransportError(f"{what}: gave up after {retries} reconnects ({exc})")

    retry = make(RetryPolicy(retries=2, backoff=0.5), t, events, gave_up=gave_up)
    n = [0]

    def op() -> None:
        n[0] += 1
        raise lost(n[0])

    with pytest.raises(TransportError, match="gave up after 2 reconnects") as ei:
        retry.call(op)
    assert n[0] == 3 and t.pauses == [0.5, 1.0] and len(events) == 2
    assert built == [("read stream lost its connection", "lost connection #3", 2)]
    assert isinstance(ei.value.__cause__, TransportError)
    assert ei.value.__cause__.args[0] == "lost connection #3"


def test_zero_retries_raises_the_first_error_itself_without_pausing() -> None:
    t, events = fresh()
    retry = make(RetryPolicy(retries=0), t, events, gave_up=lambda *a: AssertionError(a))
    first = lost(1)

    def op() -> None:
        raise first

    with pytest.raises(TransportError) as ei:
        retry.call(op)
    assert ei.value is first and t.pauses == [] and events == []


def test_only_the_errors_the_caller_names_are_retried() -> None:
    t, events = fresh()
    refused = AgentError("no space left", datastore="ds")
    retry = make(RetryPolicy(retries=3), t, events)  # default: lost connections only

    def op() -> None:
        raise refused

    with pytest.raises(AgentError) as ei:
        retry.call(op)
    assert ei.value is refused and t.pauses == []

    peer_lost = AgentError("the peer's ssh died", datastore="ds", agent_peer=True)
    picky = make(RetryPolicy(retries=3), t, events,
                 retry_if=lambda e: isinstance(e, AgentError) and bool(e.fields.get("agent_peer")))
    n = [0]

    def op2() -> int:
        n[0] += 1
        if n[0] == 1:
            raise peer_lost
        return n[0]

    assert picky.call(op2) == 2 and t.pauses == [1.0]


def test_an_interrupt_is_never_retried() -> None:
    t, events = fresh()
    retry = make(RetryPolicy(retries=3), t, events, retry_if=lambda e: True)

    def op() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retry.call(op)
    assert t.pauses == [] and events == []


def test_progress_makes_the_next_failure_the_first_again() -> None:
    """A stream that delivers between losses is not out of retries after ``retries`` losses
    in total, only after ``retries`` losses in a row (the resumable streams' rule)."""
    t, events = fresh()
    retry = make(RetryPolicy(retries=1, backoff=0.25), t, events)
    data = list(range(10))
    delivered: list[int] = []

    def stream() -> Iterator[int]:
        for attempt in retry:
            if attempt.retried_after is not None:
                assert isinstance(attempt.retried_after, TransportError)
            with attempt:
                for x in data[len(delivered):]:
                    if x in (3, 6, 8) and x not in lost_at:
                        lost_at.append(x)
                        raise lost(x)
                    yield x
                    retry.progressed()

    lost_at: list[int] = []
    for x in stream():
        delivered.append(x)
    assert delivered == data and lost_at == [3, 6, 8]
    assert t.pauses == [0.25, 0.25, 0.25] and [e.attempt for e in events] == [1, 1, 1]

    # without progress in between, the second loss in a row is one too many
    t2, events2 = fresh()
    retry = make(RetryPolicy(retries=1, backoff=0.25), t2, events2)
    n = [0]

    def op() -> None:
        n[0] += 1
        raise lost(n[0])

    with pytest.raises(TransportError, match="lost connection #2"):
        retry.call(op)
    assert t2.pauses == [0.25]


def test_a_closed_generator_is_not_retried() -> None:
    t, events = fresh()
    retry = make(RetryPolicy(retries=3), t, events, retry_if=lambda e: True)

    def stream() -> Generator[int, None, None]:
        for attempt in retry:
            with attempt:
                yield 1
                yield 2

    g = stream()
    assert next(g) == 1
    g.close()  # GeneratorExit passes through the attempt
    assert t.pauses == [] and events == []


def test_the_channel_reconnects_to_a_killed_local_agent_and_records_it(tmp_path: Path) -> None:
    """A real agent process is killed (SIGKILL) between two requests: the channel's
    retrying() sees the broken pipe, records one reconnect and gets its answer from a
    new agent."""
    (tmp_path / "f").write_bytes(b"x" * 10)
    transport = LocalTransport(str(tmp_path))
    channel = AgentChannel("ds", transport, retry=RetryPolicy(retries=2, backoff=0.01))
    ds = AgentDatastore("ds", transport, channel)
    try:
        assert ds.stat("f") is not None
        first_pid = int(channel.hello["pid"])
        os.kill(first_pid, signal.SIGKILL)
        st = channel.retrying("stat lost its connection").call(lambda: ds.stat("f"))
        assert st is not None and st.size == 10
        assert int(channel.hello["pid"]) != first_pid
        assert channel.reconnects == 1
        (ev,) = channel.events
        assert ev["event"] == "reconnect" and ev["what"] == "stat lost its connection"
        assert ev["attempt"] == 1 and ev["pause"] == 0.01 and "ds" in ev["error"]
    finally:
        ds.close()


def test_the_channel_gives_up_naming_its_datastore(tmp_path: Path) -> None:
    """An agent that cannot start (no such interpreter): two reconnects, then one
    TransportError that names the datastore and the transport."""
    transport = LocalTransport(str(tmp_path), python=str(tmp_path / "no-python"))
    channel = AgentChannel("ds1", transport, retry=RetryPolicy(retries=2, backoff=0.01))
    with pytest.raises(TransportError) as ei:
        channel.retrying("statfs lost its connection").call(lambda: channel.request("statfs"))
    msg = ei.value.one_line()
    assert msg.startswith("statfs lost its connection on datastore ds1: gave up after 2 reconnects")
    assert ei.value.fields["transport"] == f"local agent on {tmp_path}"
    assert channel.reconnects == 2 and [e["pause"] for e in channel.events] == [0.01, 0.02]
