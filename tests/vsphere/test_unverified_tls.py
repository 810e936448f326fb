"""``verify_tls: false``: one warning per address, and the certificate's SHA-256 reported.

Against govmomi's simulator serving TLS with its own test certificate (the
peer in tests/peers/vcsim.py): two sessions to the same address warn once,
and the notice the journal records (``unverified_peer``, see
tests/ssh/test_unverified_journal.py for the journal itself) carries the
SHA-256 of exactly the certificate the server presents, in the colon form
``openssl x509 -fingerprint -sha256`` and vCenter's certificate view print.
A real vCenter presents its Machine SSL certificate instead (VMware docs,
"vSphere Certificate Management"); nothing else changes.
"""

from __future__ import annotations

import hashlib
import logging
import ssl

import pytest

from tests.peers import vcsim as vcsim_peer
from tests.vsphere import vsim
from vmigrate_lib.control.vsphere.connection import Connection
from vmigrate_lib.trust import TrustListener


def test_unverified_tls_warns_once_and_reports_the_fingerprint(
    vcsim: vcsim_peer.VcsimInfo, caplog: pytest.LogCaptureFixture
) -> None:
    hp = vsim.host_params(vcsim, verify_tls=False)
    listener = TrustListener()
    try:
        with caplog.at_level(logging.WARNING, logger="vmigrate.vsphere"):
            for _ in range(2):
                Connection(hp, keepalive=None).close()
    finally:
        listener.close()
    warnings = [r for r in caplog.records if r.name == "vmigrate.vsphere"
                and "verify_tls: false" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((vcsim.host, vcsim.port)))
    want = "sha256:" + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    seen = listener.seen
    assert len(seen) == 1, seen
    n = seen[0]
    assert (n.kind, n.host, n.port, n.setting) == ("tls_certificate", vcsim.host, vcsim.port,
                                                   "verify_tls: false")
    assert n.fingerprint == want and want in warnings[0].getMessage()


def test_verified_tls_reports_nothing(vcsim: vcsim_peer.VcsimInfo) -> None:
    """verify_tls: true against the simulator's self-signed certificate is refused
    before any notice (nothing to journal: nothing was accepted)."""
    from vmigrate_lib.errors import CertificateError

    listener = TrustListener()
    try:
        with pytest.raises(CertificateError):
            Connection(vsim.host_params(vcsim, verify_tls=True), keepalive=None)
    finally:
        listener.close()
    assert listener.seen == []
