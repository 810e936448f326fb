"""A vSphere API session: verified TLS, credentials by reference, kept alive.

Long migrations outlive a vCenter session (30 min idle by default), so the
session is touched in the background and every call logs in again once when
the host says ``NotAuthenticated``.  The password is read from the environment
or the keyring at connect time and kept only as long as the session lives.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar
from xml.parsers.expat import ExpatError

from ...credentials import SecretRef, require_secret
from ...errors import (
    AuthenticationError,
    CertificateError,
    HostApiError,
    HostNotFound,
    NotVsphereEndpoint,
    ParameterError,
)
from ...params import VsphereHostParams
from ...trust import TrustNotice, notify
from ._vmomi import Disconnect, SmartConnect, vim, vmodl
from .tasks import map_fault

T = TypeVar("T")
log = logging.getLogger("vmigrate.vsphere")

DEFAULT_PORT = 443
#: Longest wait for the answer to one API call (pyVmomi's ``httpConnectionTimeout``, the
#: socket timeout of each request; QueryChangedDiskAreas on a big disk is the slowest).
#: Without it a half-open connection (host down, firewall idle drop, vCenter failover)
#: blocks a call forever: pyVmomi's ``connectionPoolTimeout`` only expires idle pooled
#: connections (pyVmomi SoapAdapter.py; github.com/vmware/pyvmomi/issues/548).
CALL_TIMEOUT = 300.0
#: Idle pooled connections are dropped after this, below vCenter's and ESXi's idle limits.
POOL_IDLE_TIMEOUT = 120.0
#: Touch the session this often (vCenter's default idle timeout is 30 minutes).
KEEPALIVE_INTERVAL = 300.0


def resolve_password(hp: VsphereHostParams, environ: dict[str, str] | None = None) -> str:
    """The API password named by ``password_env`` or ``password_keyring`` (never a value);
    read by :mod:`vmigrate_lib.credentials`, the same way as the SSH login's."""
    return require_secret(SecretRef(
        purpose=f"the vSphere API login {hp.user or '(no user)'} on {hp.host or hp.url}",
        env=hp.password_env, keyring=hp.password_keyring, user=hp.user,
        env_param="password_env", keyring_param="password_keyring"), environ)


def endpoint(hp: VsphereHostParams) -> tuple[str, int, str]:
    """(host, port, path) from ``url`` (``https://vc:443/sdk``) or else ``host``."""
    if hp.url:
        u = urllib.parse.urlsplit(hp.url if "//" in hp.url else f"https://{hp.url}")
        if u.scheme not in ("https", "") or not u.hostname:
            raise ParameterError(
                f"url {hp.url!r} is not an https URL of a vSphere host",
                hint="e.g. https://vcenter.example.org/sdk",
                parameter="url",
            )
        return u.hostname, u.port or DEFAULT_PORT, u.path or "/sdk"
    if not hp.host:
        raise ParameterError("neither url nor host is set for a vsphere host", parameter="host")
    return hp.host, DEFAULT_PORT, "/sdk"


def tls_context(verify: bool) -> ssl.SSLContext:
    """Verified against the system trust store, unless the operator opted out."""
    if verify:
        return ssl.create_default_context()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


#: Addresses already warned about (verify_tls: false warns once per process).
_WARNED: set[tuple[str, int]] = set()


def certificate_fingerprint(host: str, port: int, timeout: float = 30.0) -> tuple[str, str]:
    """(``sha256:AB:CD:...`` of the DER certificate the server presents, as
    ``openssl x509 -fingerprint -sha256`` and vCenter show it, or "", a note)."""
    ctx = tls_context(False)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        return "", f"certificate not read: {exc}"
    if not der:
        return "", "no certificate presented"
    return "sha256:" + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()), ""


class Connection:
    """One logged-in session; :meth:`call` runs API calls with one re-login on expiry."""

    def __init__(
        self,
        hp: VsphereHostParams,
        *,
        password: str | None = None,
        keepalive: float | None = KEEPALIVE_INTERVAL,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.hp = hp
        self.host, self.port, self.path = endpoint(hp)
        self.user = hp.user
        if not self.user:
            raise ParameterError("user is not set for a vsphere host", parameter="user")
        self._password = password if password is not None else resolve_password(hp)
        self._call_timeout = call_timeout
        self._lock = threading.RLock()
        self.si: Any = self._connect()
        if not hp.verify_tls:
            self._report_unverified()
        try:
            self.content: Any = self.si.RetrieveContent()
        except (OSError, http.client.HTTPException) as exc:
            raise HostNotFound(
                f"lost the vSphere API at {self.where} right after login: {exc or 'timed out'}",
                host=self.host, port=self.port,
            ) from exc
        self.relogins = 0
        self._stop = threading.Event()
        self._keepalive: threading.Thread | None = None
        if keepalive:
            self._keepalive = threading.Thread(
                target=self._keepalive_loop, args=(keepalive,), name="vsphere-keepalive", daemon=True
            )
            self._keepalive.start()

    @property
    def call_timeout(self) -> float:
        """Longest wait for one API answer, seconds (the socket timeout of each request)."""
        return self._call_timeout

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_vcenter(self) -> bool:
        return bool(self.content.about.apiType == "VirtualCenter")

    def _smart_connect(self) -> Any:
        """SmartConnect, bounded: its version probe (``vimServiceVersions.xml``) opens
        a connection without any timeout (pyVim/connect.py ``__GetElementTree``), so it
        runs in a worker thread that is abandoned, and its session closed should it ever
        log in, after ``call_timeout``; every later request has the socket timeout."""
        box: dict[str, Any] = {}
        gave_up = threading.Event()

        def run() -> None:
            try:
                si = SmartConnect(
                    host=self.host,
                    port=self.port,
                    path=self.path,
                    user=self.user,
                    pwd=self._password,
                    sslContext=tls_context(self.hp.verify_tls),
                    httpConnectionTimeout=self._call_timeout,
                    connectionPoolTimeout=POOL_IDLE_TIMEOUT,
                )
            except BaseException as exc:
                box["error"] = exc
                return
            if gave_up.is_set():
                try:
                    Disconnect(si)
                except Exception:
                    pass
                return
            box["si"] = si

        worker = threading.Thread(target=run, name="vsphere-connect", daemon=True)
        worker.start()
        worker.join(self._call_timeout)
        if worker.is_alive():
            gave_up.set()
            raise TimeoutError(f"no answer within {self._call_timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box["si"]

    def _connect(self) -> Any:
        try:
            return self._smart_connect()
        except vim.fault.InvalidLogin as exc:
            raise AuthenticationError(
                f"the vSphere host {self.where} rejected user {self.user!r}: wrong user or password",
                host=self.host,
                user=self.user,
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(
                f"the TLS certificate of {self.where} could not be verified: "
                f"{exc.verify_message or exc.reason}",
                host=self.host,
            ) from exc
        except ssl.SSLError as exc:
            if exc.reason not in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"):
                raise HostNotFound(
                    f"cannot talk to the vSphere API at {self.where}: {exc}",
                    host=self.host, port=self.port,
                ) from exc
            raise NotVsphereEndpoint(
                f"{self.where} answers plain HTTP, not HTTPS: not a vSphere API endpoint",
                host=self.host, port=self.port,
            ) from exc
        except (socket.gaierror, ConnectionError, TimeoutError) as exc:
            raise HostNotFound(
                f"cannot reach the vSphere API at {self.where}: {exc or 'timed out'}",
                hint="check the host name, the port and that the host is up and reachable",
                host=self.host,
                port=self.port,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise HostNotFound(
                f"cannot talk to the vSphere API at {self.where}: {exc}",
                host=self.host,
                port=self.port,
            ) from exc
        except vmodl.MethodFault as exc:
            raise map_fault(exc, f"login to {self.where}", host=self.host) from exc
        except ExpatError as exc:
            raise NotVsphereEndpoint(
                f"{self.where}{self.path} answered something that is not a vSphere API ({exc})",
                host=self.host, port=self.port,
            ) from exc
        except Exception as exc:
            if type(exc) is not Exception:  # pyVmomi's "not a VIM server" is a bare Exception
                raise
            raise NotVsphereEndpoint(
                f"{self.where}{self.path} is not a vSphere API (no vimServiceVersions.xml there): "
                f"another HTTPS service at that address?",
                host=self.host, port=self.port, detail=str(exc),
            ) from exc

    def _report_unverified(self) -> None:
        """verify_tls: false: warn once per address, and report the certificate seen."""
        fp, detail = certificate_fingerprint(self.host, self.port, self._call_timeout)
        if (self.host, self.port) not in _WARNED:
            _WARNED.add((self.host, self.port))
            log.warning("the TLS certificate of %s is not verified (verify_tls: false); "
                        "it presented %s", self.where, fp or detail)
        notify(TrustNotice("tls_certificate", self.host, self.port, fp, "verify_tls: false", detail))

    def relogin(self) -> None:
        """Log in again on the same stub: managed object references stay valid."""
        with self._lock:
            try:
                self.content.sessionManager.Login(self.user, self._password)
            except vim.fault.InvalidLogin as exc:
                raise AuthenticationError(
                    f"logging in again to {self.where} failed: the password changed?",
                    host=self.host,
                    user=self.user,
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise HostNotFound(
                    f"lost the vSphere API at {self.where}: {exc or 'timed out'}", host=self.host
                ) from exc
            self.relogins += 1

    def call(self, fn: Callable[[], T], what: str, **fields: Any) -> T:
        """Run ``fn`` (pyVmomi calls); re-login once on an expired session; map faults."""
        for attempt in (1, 2):
            try:
                return fn()
            except vim.fault.NotAuthenticated as exc:
                if attempt == 2:
                    raise map_fault(exc, what, **fields) from exc
                self.relogin()
            except vmodl.MethodFault as exc:
                raise map_fault(exc, what, **fields) from exc
            except (OSError, http.client.HTTPException, ExpatError) as exc:
                raise self.lost(exc, what, **fields) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def lost(self, exc: BaseException, what: str, **fields: Any) -> HostApiError:
        """The error for a call whose connection failed: no answer in time, or gone."""
        if isinstance(exc, TimeoutError):
            return HostApiError(
                f"{what} failed: no answer from {self.where} within "
                f"{self._call_timeout:g} s (host down or connection lost)",
                hint="check the host and the network to it, then re-run: it resumes",
                timeout=self._call_timeout, **fields,
            )
        return HostApiError(
            f"{what} failed: connection to {self.where} lost or answer unreadable ({exc})",
            hint="check the network to the host, then re-run: it resumes",
            **fields,
        )

    def _keepalive_loop(self, interval: float) -> None:
        """Keep the session from idling out (vCenter ends an idle one); a failed keep-alive
        is logged once per run of failures (the next real call then says what is wrong),
        and its recovery too, instead of passing in silence."""
        failing = False
        while not self._stop.wait(interval):
            try:
                self.call(lambda: self.si.CurrentTime(), "keep-alive")
            except Exception as exc:
                if not failing and not self._stop.is_set():
                    log.warning("keep-alive to %s failed: %s; the session may idle out",
                                self.where, exc)
                failing = True
            else:
                if failing:
                    log.warning("keep-alive to %s answers again", self.where)
                failing = False

    def close(self) -> None:
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=1)
            self._keepalive = None
        try:
            Disconnect(self.si)
        except Exception as exc:  # the session ends with the host's idle timeout anyway
            log.debug("logging out of %s failed: %s", self.where, exc)
        self._password = ""


__all__ = ["Connection", "endpoint", "resolve_password", "tls_context"]
