"""The agent orders the stdlib digests by their speed on this CPU (issue 13 item 2).

Real functions measured for real: one is made slower by doing more work per byte.
What only a real ESXi host would show: which stdlib digest wins on its CPU (with or
without SHA extensions); the agent measures it at start there too.
"""

import hashlib

from vmigrate_lib.dataplane.agent.hashing import HASHERS, rank


def _slow(b: bytes) -> bytes:
    for _ in range(40):  # forty passes: certainly slower than one
        hashlib.sha256(b).digest()
    return hashlib.sha256(b).digest()


def _fast(b: bytes) -> bytes:
    return hashlib.md5(b).digest()


def test_rank_puts_the_faster_stdlib_digest_first() -> None:
    """Before: a fixed order (sha1 before sha256 before md5) whatever the CPU."""
    got = [n for n, _f in rank([("slow", _slow), ("fast", _fast)])]
    assert got == ["fast", "slow"]
    got = [n for n, _f in rank([("xxh3_128", _slow), ("slow", _slow), ("fast", _fast)])]
    assert got == ["xxh3_128", "fast", "slow"]  # an accelerator stays first


def test_the_agent_offers_every_digest_once() -> None:
    names = [n for n, _f in HASHERS]
    assert len(names) == len(set(names)) and {"sha1", "sha256", "md5"} <= set(names)
