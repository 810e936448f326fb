"""What a lab guest writes: rate, block size and a hot set, reproducible by seed.

Real VMs rewrite a small working set most of the time; the hot set makes the
lab's dirty rate (and so the delta cycles) behave like that.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ParameterError
from .blockfmt import validate_block_size


@dataclass(frozen=True)
class WorkloadSpec:
    """Parameters of a guest's write workload (``rate_mb_s`` in 10**6 bytes/s; 0 = idle)."""

    rate_mb_s: float = 1.0
    block_size: int = 4096
    hot_fraction: float = 0.1
    hot_share: float = 0.9
    seed: int = 1
    ack_interval: float = 1.0

    def validate(self) -> WorkloadSpec:
        """Reject nonsense before a guest is started with it."""
        if self.rate_mb_s < 0:
            raise ParameterError("workload rate must be >= 0", rate_mb_s=self.rate_mb_s)
        validate_block_size(self.block_size)
        if not 0.0 < self.hot_fraction <= 1.0:
            raise ParameterError("hot_fraction must be in (0, 1]", hot_fraction=self.hot_fraction)
        if not 0.0 <= self.hot_share <= 1.0:
            raise ParameterError("hot_share must be in [0, 1]", hot_share=self.hot_share)
        if self.ack_interval <= 0:
            raise ParameterError("ack_interval must be > 0", ack_interval=self.ack_interval)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkloadSpec:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ParameterError(f"unknown workload parameter(s): {', '.join(unknown)}")
        try:
            return cls(**known).validate()
        except TypeError as exc:
            raise ParameterError(f"bad workload parameters: {exc}") from exc


class BlockPicker:
    """Chooses (disk index, block index) pairs: ``hot_share`` of picks in a hot region.

    Disks are chosen in proportion to their capacity; each disk's hot region is
    one contiguous run (seeded), like a database's busy tables.
    """

    def __init__(self, spec: WorkloadSpec, capacities: Sequence[int], salt: int = 0) -> None:
        self._rng = random.Random(f"{spec.seed}:{salt}")
        self._spec = spec
        self._nblocks = [max(1, c // spec.block_size) for c in capacities]
        self._weights = [float(n) for n in self._nblocks]
        self._hot: list[tuple[int, int]] = []
        for n in self._nblocks:
            size = max(1, int(n * spec.hot_fraction))
            place = random.Random(f"{spec.seed}:hot:{n}").randrange(0, n - size + 1)
            self._hot.append((place, size))

    def next(self) -> tuple[int, int]:
        disk = self._rng.choices(range(len(self._nblocks)), weights=self._weights)[0]
        if self._rng.random() < self._spec.hot_share:
            start, size = self._hot[disk]
            return disk, start + self._rng.randrange(size)
        return disk, self._rng.randrange(self._nblocks[disk])


class TokenBucket:
    """Paces writes to ``rate`` bytes/s with a small burst, so the dirty rate is steady."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = 0.0
        self._last = time.monotonic()

    def wait_time(self, n: int) -> float:
        """Seconds until ``n`` bytes may be written (0 = now, tokens taken)."""
        if self.rate <= 0:
            return 0.25
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate
