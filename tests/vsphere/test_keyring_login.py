"""The vSphere API password from the OS keyring logs in to VMware's govmomi simulator.

The keyring is keyrings.alt's file backend in the test's folder (tests/peers/filekeyring.py);
the simulator checks the user and password like a host (wrong ones: InvalidLogin).  Only a
real vCenter would add its own identity sources (SSO domains, lockout policy).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.peers.filekeyring import file_keyring
from tests.vsphere import vsim
from vmigrate_lib.control.vsphere import VsphereHost
from vmigrate_lib.errors import AuthenticationError


def test_keyring_password_logs_in(vcsim: vcsim_peer.VcsimInfo, tmp_path: Path) -> None:
    """SERVICE/USER and SERVICE (the API user) both log in; a wrong stored password is
    refused and never shown.  The same syntax logs in over SSH (tests/ssh/test_keyring_login.py)."""
    with file_keyring(tmp_path) as kr:
        kr.set_password("vmigrate-vc", vcsim.user, vcsim.password)
        for ref in (f"vmigrate-vc/{vcsim.user}", "vmigrate-vc"):
            h = VsphereHost(vsim.host_params(vcsim, password_env="", password_keyring=ref))
            try:
                assert h.find_vm("ha-host_VM0")
            finally:
                h.close()
        wrong = "Wr0ng-Stored-Pw"
        kr.set_password("vmigrate-vc", vcsim.user, wrong)
        with pytest.raises(AuthenticationError, match="wrong user or password") as exc:
            VsphereHost(vsim.host_params(vcsim, password_env="", password_keyring="vmigrate-vc"))
        assert wrong not in exc.value.one_line() and vcsim.password not in exc.value.one_line()
