"""The CLI's stderr contract and its shared argument helpers.

"Errors are one line": a library that logs a warning (pyVmomi connection's "the TLS
certificate of ... is not verified", paramiko's transport, an unknown SSH host key
accepted) printed a bare message through Python's last-resort handler, so stderr held
lines that were neither vmigrate's error nor marked as a warning
(tests/vsphere/test_vsphere_cli.py::test_licence_refusals_then_cutover failed on it).
Here the handler the CLI installs is driven with real :mod:`logging` and
:mod:`warnings` calls; the end-to-end proof against the govmomi simulator is that
vSphere test.  A real ESXi/vCenter host adds nothing here (the text is ours).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator

import pytest

from vmigrate_lib.faces import cli
from vmigrate_lib.faces.common import from_file
from vmigrate_lib.faces.console import WARNING_PREFIX, WarningLines, warnings_as_lines
from vmigrate_lib.params import CutoverParams, SyncParams
from vmigrate_lib.units import fmt_duration, parse_duration


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    out = io.StringIO()
    old_show = warnings.showwarning
    handler = warnings_as_lines(out)
    try:
        yield out
    finally:
        logging.getLogger().removeHandler(handler)
        warnings.showwarning = old_show


def test_library_warnings_are_one_prefixed_line_each(stderr: io.StringIO) -> None:
    """A logged warning (multi-line text, an attached exception) and ``warnings.warn``
    each become exactly one ``vmigrate: warning:`` line; INFO stays silent."""
    log = logging.getLogger("vmigrate.vsphere")
    log.warning("the TLS certificate of %s is not verified\n(verify_tls: false)", "h:443")
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logging.getLogger("paramiko.transport").error("Socket exception", exc_info=True)
    logging.getLogger("papermill").info("Executing notebook")  # below WARNING: not shown
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("Unverified HTTPS request\nis being made", UserWarning, stacklevel=1)
    lines = stderr.getvalue().splitlines()
    assert lines == [
        f"{WARNING_PREFIX}the TLS certificate of h:443 is not verified (verify_tls: false)",
        f"{WARNING_PREFIX}Socket exception (ConnectionResetError: peer went away)",
        f"{WARNING_PREFIX}Unverified HTTPS request is being made (UserWarning)",
    ]


def test_installing_twice_keeps_one_handler(stderr: io.StringIO) -> None:
    """``main()`` run twice in one process (tests do) must not print each warning twice."""
    second = warnings_as_lines(stderr)
    try:
        ours = [h for h in logging.getLogger().handlers if isinstance(h, WarningLines)]
        assert ours == [second]
        logging.getLogger("x").warning("once")
        assert stderr.getvalue().count("once") == 1
    finally:
        logging.getLogger().removeHandler(second)


@pytest.mark.parametrize("seconds", [0.0, 2.5, 30.0, 60.0, 90.0, 600.0, 5400.0, 7200.0,
                                     86399.0, 366 * 86400.0])
def test_fmt_duration_reads_back(seconds: float) -> None:
    """Help texts write defaults the way a params file does; parse_duration reads them back."""
    text = fmt_duration(seconds)
    assert "e" not in text and parse_duration(text) == seconds


def test_cutover_help_names_the_schema_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """The cutover flags' help shows the params schema's defaults (one place: vmigrate_lib/params)."""
    with pytest.raises(SystemExit):
        cli.main(["cutover", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    c = CutoverParams()
    for name, shown in (("max_sync_age", fmt_duration(c.max_sync_age)),
                        ("shutdown_timeout", fmt_duration(c.shutdown_timeout)),
                        ("allow_hard_poweroff", "yes" if c.allow_hard_poweroff else "no"),
                        ("certify", c.certify), ("probe_timeout", fmt_duration(c.probe_timeout)),
                        ("ready_timeout", fmt_duration(c.ready_timeout)),
                        ("expected_shutdown", fmt_duration(c.expected_shutdown)),
                        ("expected_boot", fmt_duration(c.expected_boot))):
        assert f"cutover.{name}, {shown}" in out
    assert from_file("sync", "max_cycles") == f"sync.max_cycles, {SyncParams().max_cycles}"
