"""The vSphere host's timeouts and consolidation choice come from the params file
(issue 11 items 2, 4, 9): ``api_timeout`` (each API call's answer),
``snapshot_remove_timeout`` (removal/consolidation, default 2 h after Forklift's
120 min, https://github.com/kubev2v/forklift/pull/5731) and ``allow_consolidate``
(ConsolidateVMDisks_Task on a VM found running on a delta) reach the
VsphereHost the factory builds, and bad values are refused before anything.

Against the govmomi simulator and a real silent TCP peer (tests/peers/stallproxy.py);
nothing here needs a real host.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.peers.stallproxy import StallProxy
from vmigrate_lib.control.factory import open_host
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import HostNotFound, ParameterError
from vmigrate_lib.params import validate

PW_ENV = "VMIGRATE_TEST_PARAMS_PW"


def params(sim: vcsim_peer.VcsimInfo, tmp: Path, url: str = "", **source: Any) -> Any:
    os.environ[PW_ENV] = sim.password
    host = {"type": "vsphere", "host": sim.host, "url": url or sim.url, "user": sim.user,
            "password_env": PW_ENV, "verify_tls": False}
    return validate({"vm": "alice", "workspace": str(tmp / "ws"),
                     "source": {**host, **source}, "destination": host})


def test_params_reach_the_host(vcsim: vcsim_peer.VcsimInfo, tmp_path: Path) -> None:
    p = params(vcsim, tmp_path, api_timeout="45s", snapshot_remove_timeout="3h",
               allow_consolidate=True)
    host = open_host(p.source)
    try:
        assert isinstance(host, VsphereHost)
        assert (host.conn.call_timeout, host.snapshot_remove_timeout, host.allow_consolidate) \
            == (45.0, 10800.0, True)
    finally:
        host.close()
    host = open_host(p.destination)  # the defaults
    try:
        assert isinstance(host, VsphereHost)
        assert (host.conn.call_timeout, host.snapshot_remove_timeout, host.allow_consolidate) \
            == (300.0, 7200.0, False)
    finally:
        host.close()


def test_api_timeout_bounds_the_login_to_a_silent_host(
        vcsim: vcsim_peer.VcsimInfo, tmp_path: Path) -> None:
    with StallProxy(vcsim.host, vcsim.port) as proxy:
        proxy.stall()
        p = params(vcsim, tmp_path, url=f"https://127.0.0.1:{proxy.port}/sdk", api_timeout="1s")
        box: dict[str, BaseException] = {}

        def run() -> None:
            try:
                open_host(p.source).close()
            except BaseException as exc:
                box["error"] = exc

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(120)  # a liveness guard: without a timeout the login never returns
        assert not t.is_alive(), "the login hung"
        err = box.get("error")
        assert isinstance(err, HostNotFound) and "within 1 s" in err.one_line(), err


@pytest.mark.parametrize("field,value", [("api_timeout", 0), ("snapshot_remove_timeout", "0s"),
                                         ("api_timeout", "soon"), ("allow_consolidate", "yes")])
def test_bad_values_refused(vcsim: vcsim_peer.VcsimInfo, tmp_path: Path, field: str,
                            value: Any) -> None:
    with pytest.raises(ParameterError) as info:
        params(vcsim, tmp_path, **{field: value})
    line = info.value.one_line()
    assert info.value.exit_code == 2 and f"source.{field}" in line and "unknown" not in line, line
