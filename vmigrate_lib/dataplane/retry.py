"""One retry loop for work that may lose its connection: bounded attempts, capped backoff.

Every reconnect of the SSH data plane (a request, a read, hash or write stream,
a direct push) runs through :class:`Retrying`, so that the bound, the pause
and the record of each reconnect are written once::

    retry = channel.retrying("read stream lost its connection")
    for attempt in retry:          # ends when an attempt completes
        if attempt.retried_after is not None:
            ...                    # resume from what the last attempt delivered
        with attempt:              # swallows an error the policy retries
            ...                    # the work; retry.progressed() when it moves on

The iterator pauses (``backoff`` doubled per failure, at most ``backoff_max``)
before each new attempt, and raises once ``retries`` reconnects did not help.
A failure after progress counts from one again (:meth:`Retrying.progressed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from ..errors import TransportError

if TYPE_CHECKING:
    from .sshconfig import SshSettings

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a lost connection is retried."""

    retries: int = 0  #: reconnects after a lost connection (0: the first loss is final)
    backoff: float = 1.0  #: first pause in seconds, doubled per failure
    backoff_max: float = 15.0  #: no single pause is longer

    @classmethod
    def from_settings(cls, s: SshSettings) -> RetryPolicy:
        """The SSH host's ``retries``, ``backoff`` and ``backoff_max``."""
        return cls(retries=s.retries, backoff=s.backoff, backoff_max=s.backoff_max)

    def pause(self, failure: int) -> float:
        """Seconds to wait before reconnect number ``failure`` (1-based)."""
        return float(min(self.backoff * 2 ** (failure - 1), self.backoff_max))


#: The first lost connection is final (a local agent: nothing to reconnect to).
NO_RETRY = RetryPolicy()


@dataclass(frozen=True)
class RetryEvent:
    """One reconnect about to happen, for the caller's record (journal, log)."""

    what: str  #: what lost its connection, e.g. "read stream lost its connection"
    attempt: int  #: the reconnect's number since the last progress (1-based)
    retries: int  #: the policy's bound
    pause: float  #: seconds waited before it
    error: BaseException  #: what ended the previous attempt
    at: float  #: when (the clock's value as the pause began)


def lost_connection(exc: BaseException) -> bool:
    """The default of what is retried: a lost connection to an agent."""
    return isinstance(exc, TransportError)


class Attempt:
    """One try of the work.  As a context manager it swallows an error the policy
    retries (kept in :attr:`error`, for the loop to pause and try again); anything
    else (another error, an interrupt, a closed generator) passes through."""

    def __init__(self, retry_if: Callable[[BaseException], bool],
                 retried_after: BaseException | None) -> None:
        self.retry_if = retry_if
        self.retried_after = retried_after  #: the error that ended the previous attempt
        self.error: BaseException | None = None  #: the retryable error that ended this one

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if isinstance(exc, Exception) and self.retry_if(exc):
            self.error = exc
            return True
        return False


class Retrying:
    """Attempts of one piece of work under a :class:`RetryPolicy`.

    ``retry_if`` says which errors are retried (default: :func:`lost_connection`).
    ``on_retry`` hears of every reconnect before its pause.  ``gave_up`` builds the
    error raised when ``retries`` (> 0) reconnects did not help, from ``what``, the
    last error and the bound; without it, or with 0 retries, the last error itself
    is raised.  ``sleep`` and ``clock`` are the waits and the time (the real ones
    unless a caller needs its own).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        what: str,
        *,
        retry_if: Callable[[BaseException], bool] = lost_connection,
        on_retry: Callable[[RetryEvent], None] | None = None,
        gave_up: Callable[[str, BaseException, int], BaseException] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.what = what
        self.retry_if = retry_if
        self.on_retry = on_retry
        self.gave_up = gave_up
        self.sleep = sleep
        self.clock = clock
        self.failures = 0  #: failures since the start or the last progress

    def progressed(self) -> None:
        """The work moved on: the next failure is the first again."""
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        """Count a failure: pause before the next attempt, or raise when none is left."""
        self.failures += 1
        retries = self.policy.retries
        if self.failures > retries:
            if retries and self.gave_up is not None:
                raise self.gave_up(self.what, exc, retries) from exc
            raise exc
        pause = self.policy.pause(self.failures)
        if self.on_retry is not None:
            self.on_retry(RetryEvent(self.what, self.failures, retries, pause, exc, self.clock()))
        self.sleep(pause)

    def __iter__(self) -> Iterator[Attempt]:
        """Attempts until one completes (the loop ends) or the policy gives up (raises)."""
        previous: BaseException | None = None
        while True:
            attempt = Attempt(self.retry_if, previous)
            yield attempt
            if attempt.error is None:
                return
            previous = attempt.error
            self.failed(previous)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, tried again after each retryable failure."""
        for attempt in self:
            with attempt:
                return fn()
        raise AssertionError("unreachable: an attempt that completes returns")
