"""The "never two VMs on" watcher fails when it has no evidence.

The watcher is the suite's check of a core safety rule, so it is tested itself
against a real lab (a running Alice on esx-a, no Bob): a sample whose read
raises (as reading a VM that is being unregistered can) is not a sample.  Only
the lab's power states are read here; on ESXi/vCenter the same rule is checked by
the vSphere end-to-end tests against the simulator.
"""

from __future__ import annotations

import threading

import pytest

from tests.cutover.cutover_helpers import Lab, Watch
from vmigrate_lib.errors import LabError


def test_good_samples_pass(lab: Lab) -> None:
    """Alice on, Bob absent: the watch reads both states many times and passes."""
    done = threading.Event()
    with Watch(lab, min_samples=10) as w:
        while w.samples < 10:
            done.wait(0.01)
    assert w.samples >= 10 and w.both == 0 and not w.errors


def test_every_sample_raising_fails(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bob's state cannot be read at all: the watch must fail, not pass on zero evidence
    (before: it counted the failed reads as samples and passed)."""

    def unreadable() -> bool:
        raise LabError("bob is being unregistered")

    monkeypatch.setattr(lab, "bob_on", unreadable)
    with pytest.raises(AssertionError, match="never read both power states"), \
            Watch(lab, first_sample_within=2.0):
        pass


def test_too_many_errors_fail(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other read of Bob raises: over the tolerated 10%, the watch fails."""
    real = lab.bob_on
    calls = [0]

    def flaky() -> bool:
        calls[0] += 1
        if calls[0] % 2:
            raise LabError("bob is being unregistered")
        return real()

    monkeypatch.setattr(lab, "bob_on", flaky)
    w = Watch(lab, min_samples=10)
    with pytest.raises(AssertionError, match="samples raised"), w:
        while w.samples < 10:
            threading.Event().wait(0.01)
