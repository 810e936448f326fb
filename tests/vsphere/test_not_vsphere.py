"""A vSphere API URL that answers, but not as vSphere: one line, exit 2, nothing changed.

Real local servers: Python's ``http.server`` behind TLS with a self-signed
certificate made by ``cryptography`` (an HTTPS service that answers HTML at
``/sdk``, as a web server or a load balancer's default page would), and the same
server without TLS (plain HTTP behind an ``https://`` URL).  pyVmomi's
SmartConnect first GETs ``/sdk/vimServiceVersions.xml`` and, when that is not
VIM XML, raises a bare ``Exception("... is not a VIM server")`` (pyVmomi
``connect.py``, ``__FindSupportedVersion``); before this fix that became a traceback.

What only a real vCenter/ESXi would show: the positive case, its real
``vimServiceVersions.xml``; the simulator tests (tests/vsphere) cover that.
"""

from __future__ import annotations

import datetime
import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pyVmomi")

from vmigrate_lib.control.vsphere.connection import Connection
from vmigrate_lib.errors import NotVsphereEndpoint
from vmigrate_lib.params import VsphereHostParams


class _Html(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def self_signed(tmp: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    c, k = tmp / "cert.pem", tmp / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return str(c), str(k)


@pytest.fixture(params=["https", "plain-http"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    if request.param == "https":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self_signed(tmp_path))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield request.param, srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _hp(port: int) -> VsphereHostParams:
    return VsphereHostParams(url=f"https://127.0.0.1:{port}/sdk", user="u",
                             password_env="H1_NOT_VSPHERE_PW", verify_tls=False)


def test_connection_says_not_vsphere(server: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    kind, port = server
    monkeypatch.setenv("H1_NOT_VSPHERE_PW", "x")
    with pytest.raises(NotVsphereEndpoint) as ei:
        Connection(_hp(port), keepalive=None)
    line = ei.value.one_line()
    assert f"127.0.0.1:{port}" in line and ei.value.exit_code == 2, line
    assert ("plain HTTP" in line) if kind == "plain-http" else ("not a vSphere API" in line), line


def test_cli_one_line_exit_2(server: tuple[str, int], tmp_path: Path) -> None:
    _kind, port = server
    host = {"type": "vsphere", "url": f"https://127.0.0.1:{port}/sdk", "host": "esx01",
            "user": "u", "password_env": "H1_NOT_VSPHERE_PW", "verify_tls": False}
    pf = tmp_path / "params.yaml"
    pf.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "operator": "test", "workspace": str(tmp_path / "ws"),
        "source": host, "destination": {**host, "host": "esx02"},
    }))
    r = subprocess.run([sys.executable, "-m", "vmigrate_lib.faces.cli", "preflight", "--params",
                        str(pf)], capture_output=True, text=True, timeout=120, check=False,
                       env={**os.environ, "H1_NOT_VSPHERE_PW": "x"})
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    errs = [x for x in lines if x.startswith("vmigrate: error:")]
    assert len(errs) == 1 and f"127.0.0.1:{port}" in errs[0], r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "ws").exists()
