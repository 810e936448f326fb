"""A write stream's checkpoints made durable beside the copy, not in its way.

A FLUSH asks for the bytes written so far to be durable before they are acknowledged
(the client resumes from the last acknowledged byte).  fsync in the stream's own loop
stopped the loop for as long as the disk took: nothing was read meanwhile, the sender
stalled once the SSH window filled.  On this project's bench disk an fsync of 64 MiB
took about 0.05 s (an earlier session's figure) and the A/B stayed within noise (bench/README.md, 2026-12-02); on a
datastore whose fsync is slower every checkpoint stopped the copy for that long.  Here
each FLUSH's fsync runs in a thread and its
ACK goes out when it returns; the loop goes on reading and writing.  One at a time: the
next FLUSH (or END) first waits for the one before, so ACKs keep their order and a
failure is reported in place of the ACK it replaces.  fsync(2) covers every page of the
file dirty when it is called, so bytes written meanwhile are covered too, never fewer.
"""

import os
import threading


class Durable(object):
    """fsync of the stream's file per FLUSH in a thread, ``ack(count)`` when it returns."""

    def __init__(self, fd, ack):
        self.fd = fd
        self.ack = ack  # called from the thread: sends the ACK frame and flushes
        self.acked = 0  #: bytes durable and acknowledged
        self.thread = None  # type: ignore
        self.failure = None  # type: ignore

    def start(self, count):
        """Make the first ``count`` bytes durable, then acknowledge them (in a thread);
        call :meth:`wait` first."""
        self.thread = threading.Thread(target=self._run, args=(count,), name="fsync")
        self.thread.daemon = True
        self.thread.start()

    def _run(self, count):
        try:
            os.fsync(self.fd)
        except OSError as exc:
            self.failure = exc
            return
        self.acked = count
        try:
            self.ack(count)
        except (OSError, ValueError) as exc:  # the client is gone: the loop ends on EOF
            self.failure = exc

    def wait(self):
        """The FLUSH in progress is over (acknowledged or failed); its failure, or None.
        Nothing else may send on the stream while one is in progress."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        return self.failure
