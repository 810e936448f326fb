"""What the machine had left while the suite ran: free disk under the temp folder, free
memory and the load, read after every test (in the process that prints the results, so
under xdist once for all workers), and the low points printed at the end.

Why: CI keeps only the printed output.  A run that fails everywhere at once (stop 25:
72 SSH and simulator tests timing out, none of them on this machine) needs the state of
the machine beside it, and a full disk or a starved CPU should be named, not guessed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field

MiB = 1 << 20


@dataclass
class Sample:
    nodeid: str
    disk_free: int  #: bytes free for unprivileged writers under the temp folder
    mem_available: int  #: MemAvailable, bytes (0 where /proc/meminfo is missing)
    load1: float

    def line(self) -> str:
        return (f"{self.disk_free // MiB} MiB free in {tempfile.gettempdir()}, "
                f"{self.mem_available // MiB} MiB memory available, load {self.load1:.1f} "
                f"(after {self.nodeid})")


def sample(nodeid: str) -> Sample:
    st = os.statvfs(tempfile.gettempdir())
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for ln in f:
                if ln.startswith("MemAvailable:"):
                    mem = int(ln.split()[1]) * 1024
    except OSError:
        pass
    return Sample(nodeid, st.f_bavail * st.f_frsize, mem, os.getloadavg()[0])


def processes(top: int = 12) -> list[str]:
    """The busiest processes and how many of each command run (a run that slowed down
    everywhere: a process left spinning, or hundreds of sshd or agents left behind)."""
    p = subprocess.run(["ps", "-ww", "-eo", "pid,stat,etime,pcpu,rss,comm,args", "--sort=-pcpu"],
                       capture_output=True, text=True, check=False)
    rows = p.stdout.splitlines()
    counts = Counter(r.split(None, 6)[5] for r in rows[1:] if len(r.split(None, 6)) > 5)
    common = ", ".join(f"{n} {c}" for c, n in counts.most_common(8))
    return [r[:160] for r in rows[: top + 1]] + [f"{len(rows) - 1} processes: {common}"]


@dataclass
class Watch:
    """The first sample, the low points and the sample at the first failure."""

    first: Sample | None = None
    least_disk: Sample | None = None
    least_mem: Sample | None = None
    most_load: Sample | None = None
    first_failure: Sample | None = None
    procs_at_failure: list[str] = field(default_factory=list)

    def record(self, nodeid: str, failed: bool) -> None:
        s = sample(nodeid)
        self.first = self.first or s
        if self.least_disk is None or s.disk_free < self.least_disk.disk_free:
            self.least_disk = s
        if self.least_mem is None or s.mem_available < self.least_mem.mem_available:
            self.least_mem = s
        if self.most_load is None or s.load1 > self.most_load.load1:
            self.most_load = s
        if failed and self.first_failure is None:
            self.first_failure, self.procs_at_failure = s, processes()

    def lines(self) -> list[str]:
        named = [("first", self.first), ("least disk", self.least_disk),
                 ("least memory", self.least_mem), ("highest load", self.most_load),
                 ("at the first failure", self.first_failure)]
        out = [f"{what}: {s.line()}" for what, s in named if s is not None]
        if self.procs_at_failure:
            out += ["processes at the first failure:", *self.procs_at_failure]
        return out
