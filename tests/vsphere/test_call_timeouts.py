"""No vSphere call may hang (issue 11 item 4).

A host that went down, a firewall that dropped an idle flow, or a vCenter that
failed over leaves a TCP connection open that nobody answers.  pyVmomi's
``connectionPoolTimeout`` only expires idle pooled connections; the socket
timeout of a request is ``httpConnectionTimeout``, unset by default
(pyVmomi SoapAdapter.py; https://github.com/vmware/pyvmomi/issues/548: a call
"stuck for more than 2 days" in ``socket.recv``; issues 604/627: no way to
time out SmartConnect before pyVmomi 8.0.0.1), and SmartConnect's version
probe (``vimServiceVersions.xml``) opens its connection with no timeout at all.

The peer is real: ``tests/peers/stallproxy.py``, a TCP proxy in front of the
govmomi simulator that, on command, accepts and never answers (and stops
relaying open connections).  Each test stalls it at one point of the work --
before the first login (preflight), right after the cycle's snapshot
(mid-cycle), at the cutover's register step (mid-cutover) -- and proves the
call ends with a one-line error naming the host and the timeout, and that a
re-run after the host answers again resumes and finishes.

What only a real host shows: how long a real vCenter/ESXi takes to answer a
slow call such as QueryChangedDiskAreas on a multi-TB disk (the default
timeout, 300 s, must stay above it), and whether a failover resets the
connection (fast error) or leaves it half-open (this case).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.peers.stallproxy import StallProxy
from tests.vsphere import vsim
from tests.vsphere.simenv import sim_pair
from vmigrate_lib.control.host import PowerState
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.engine.context import Migration
from vmigrate_lib.engine.cutover import CutoverOptions, run_cutover
from vmigrate_lib.engine.cycle import run_cycle
from vmigrate_lib.engine.progress import Event, Reporter, event_info
from vmigrate_lib.engine.sync import run_cycles, start
from vmigrate_lib.engine.workspace import Workspace
from vmigrate_lib.errors import HostApiError, HostNotFound, VmigrateError
from vmigrate_lib.params import MigrationParams, SyncParams
from vmigrate_lib.session import close_migration

MiB = 1 << 20
CAP = 4 * MiB
TIMEOUT = 2.0  #: the call timeout under test, seconds
#: A liveness guard, not a performance bound: without the fix the call never returns.
HANG = 120.0


def bounded(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread; its result or exception, or fail if it hangs."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG)
    assert not t.is_alive(), f"the call hung (still blocked after {HANG:.0f} s)"
    if "error" in box:
        raise box["error"]
    return box.get("result")


class StallOn(Reporter):
    """Stalls the proxy when the engine reports the given event."""

    def __init__(self, proxy: StallProxy, match: Callable[[str, dict[str, Any]], bool]) -> None:
        self.proxy, self.match = proxy, match
        self.fired = False

    def event(self, ev: Event, /) -> None:
        if not self.fired and self.match(ev.kind_, event_info(ev)):
            self.fired = True
            self.proxy.stall()


@dataclass
class Env:
    src: vcsim_peer.VcsimInfo
    dst: vcsim_peer.VcsimInfo
    src_proxy: StallProxy
    dst_proxy: StallProxy
    root: Path
    tmp: Path

    def host(self, sim: vcsim_peer.VcsimInfo, proxy: StallProxy, ds: str, **kw: Any) -> VsphereHost:
        hp = vsim.host_params(sim, url=f"https://127.0.0.1:{proxy.port}/sdk", **kw)
        return VsphereHost(hp, call_timeout=TIMEOUT, keepalive=None,
                           transport_factory=vsim.local_transports({ds: self.root / ds}))

    def migration(self, reporter: Reporter | None = None, **sync: Any) -> Migration:
        s = self.host(self.src, self.src_proxy, "srcds")
        d = self.host(self.dst, self.dst_proxy, "dstds", datastore="dstds")
        params = MigrationParams(
            vm="alice", dest_name="bob", source=s.hp, destination=d.hp,
            workspace=self.tmp / "ws", downtime_budget=300.0, sync=SyncParams(**sync))
        ws = Workspace(params.workspace)
        ws.load()
        return Migration(params=params, source=s, dest=d, workspace=ws,
                         reporter=reporter or Reporter())


@pytest.fixture
def env(tmp_path: Path, vcsim_binary: Path) -> Iterator[Env]:
    with sim_pair(tmp_path, vcsim_binary, esxi_files=True) as p, \
            StallProxy(p.src.host, p.src.port) as sp, StallProxy(p.dst.host, p.dst.port) as dp:
        yield Env(p.src, p.dst, sp, dp, p.root, tmp_path)


def assert_one_line(exc: VmigrateError, host_port: int) -> None:
    line = exc.one_line()
    assert "\n" not in line
    assert f"127.0.0.1:{host_port}" in line and f"within {TIMEOUT:g} s" in line, line


def test_preflight_login_to_a_silent_host_ends(env: Env) -> None:
    """Before any call: SmartConnect's version probe had no timeout at all."""
    env.src_proxy.stall()
    with pytest.raises(HostNotFound) as info:
        bounded(lambda: env.host(env.src, env.src_proxy, "srcds"))
    assert info.value.exit_code == 2
    assert_one_line(info.value, env.src_proxy.port)
    assert env.src_proxy.accepted_while_stalled >= 1
    env.src_proxy.resume()
    host = env.host(env.src, env.src_proxy, "srcds")  # answers again: works
    try:
        assert host.find_vm("alice").power == PowerState.ON
    finally:
        host.close()


def test_mid_cycle_silence_ends_the_cycle_and_a_rerun_resumes(env: Env) -> None:
    """The source stops answering right after the cycle's snapshot (open pooled
    connection and new ones): the cycle ends with a one-line error, its snapshot
    stays recorded; once the host answers, the next run removes it and seeds."""
    rep = StallOn(env.src_proxy, lambda k, i: k == "phase" and i.get("phase") == "snapshot")
    m = env.migration(rep, allow_enable_cbt=True)
    try:
        with m.workspace, pytest.raises(HostApiError) as info:
            start(m)
            bounded(lambda: run_cycle(m))
        assert rep.fired
        assert_one_line(info.value, env.src_proxy.port)
        ip = m.workspace.state.in_progress
        assert ip is not None and ip.snapshot_id and not ip.snapshot_removed
        left = ip.snapshot_name
    finally:
        close_migration(m)
    with vsim.pyvmomi(env.src) as si:  # the host kept the snapshot
        tree = vsim.vm(si, "alice").snapshot
        assert [n.name for n in tree.rootSnapshotList] == [left]

    env.src_proxy.resume()
    m = env.migration()
    try:
        with m.workspace:
            out = run_cycle(m)
        assert out.record["kind"] == "seed" and out.record["resumed"]
        assert out.record["certify"]["result"] == "identical"
        assert [r["snapshot"] for r in m.workspace.journal.records("stale_snapshot_removed")] == [left]
        assert m.source.list_snapshots("alice") == []
    finally:
        close_migration(m)
    src = env.root / "srcds" / "alice" / "alice-flat.vmdk"
    assert src.read_bytes() == (env.root / "dstds" / "bob" / "bob-flat.vmdk").read_bytes()


def test_mid_cutover_silence_ends_the_step_and_a_rerun_finishes(env: Env) -> None:
    """The destination stops answering when the cutover registers Bob (Alice is
    already off): the step ends within the timeout with a one-line error instead
    of holding the downtime window open forever; once B answers, re-running
    the cutover (rollback first if one was needed) brings Bob up."""
    m = env.migration(allow_enable_cbt=True)
    try:
        with m.workspace:
            run_cycles(m, 2)  # the seed, and a delta for the planner's figures
    finally:
        close_migration(m)
    bob_dir = env.root / "dstds" / "bob"
    (bob_dir / "vmware.log").touch()  # simulator: RegisterVM wants it (ESXi does not)
    opts = CutoverOptions(shutdown_timeout=30, ready_timeout=30, certify="full",
                          shutdown_s=1.0, boot_s=1.0)
    rep = StallOn(env.dst_proxy, lambda k, i: k == "step" and i.get("name") == "register"
                  and i.get("status") == "started")
    m = env.migration(rep)
    try:
        with m.workspace, pytest.raises(VmigrateError) as info:
            bounded(lambda: run_cutover(m, opts))
        assert rep.fired
        line = info.value.one_line()
        assert "\n" not in line and f"within {TIMEOUT:g} s" in line, line
        assert m.workspace.state.cutover is not None
        assert m.workspace.state.cutover.status != "done"
    finally:
        close_migration(m)

    env.dst_proxy.resume()
    result = None
    errors = [line]
    for _ in range(3):  # a resumed rollback ends with an error; the next attempt runs
        m = env.migration()
        try:
            with vsim.GuestStarter(env.dst, "bob") as guest, \
                    vsim.GuestStarter(env.src, "alice", after_power_off=True), m.workspace:
                result = run_cutover(m, opts)
            assert guest.done.is_set()
            break
        except VmigrateError as exc:
            errors.append(exc.one_line())
            assert "rolled back" in exc.one_line(), errors
        finally:
            close_migration(m)
    assert result is not None and result.status == "done", (result, errors)
    m = env.migration()
    try:
        assert m.dest.find_vm("bob").power == PowerState.ON
        assert m.source.power_state("alice") == PowerState.OFF
    finally:
        close_migration(m)
