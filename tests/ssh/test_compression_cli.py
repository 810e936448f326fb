"""The operator's view of compression (issue 13 item 1): the preflight line, the journal.

Two lab hosts served over one real OpenSSH sshd on 127.0.0.1 (their agents run the
host's python3, which has no zstandard module, as ESXi's has none).  What only a real
ESXi host would show: its python's codec list (stdlib zlib only, as here) and its speed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.labkit import alice_on_a, lab_host, run_cli
from tests.peers.sshd import SshHost
from tests.ssh import hostprofile

MiB = 1 << 20

ssh_stdlib_host = hostprofile.ssh_stdlib_host  # a host without zstd/lz4 tools (fixture)


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Path]:
    with alice_on_a(tmp_path / "lab", (8 * MiB,), fill=0.5) as root:
        yield root


def _params(tmp_path: Path, h: SshHost, lab: Path, compress: str) -> Path:
    pf = tmp_path / f"params-{compress}.yaml"
    pf.write_text(yaml.safe_dump({
        "vm": "alice", "dest_name": "bob", "operator": "test", "downtime_budget": "30s",
        "source": lab_host(h, "esx-a", lab, ssh_compress=compress, ssh_mode="relay"),
        "destination": lab_host(h, "esx-b", lab), "workspace": str(tmp_path / f"ws-{compress}"),
    }))
    return pf


def _vmigrate(params: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(params, *args, timeout=180)


def test_lacking_codec_is_a_preflight_line(ssh_stdlib_host: SshHost, lab: Path,
                                           tmp_path: Path) -> None:
    """ssh_compress zstd on a host whose python lacks it and whose PATH has no zstd tool
    (as on ESXi): preflight fails with a compression line and a one-line error with the
    fix, exit 2, no workspace made.  Before: preflight passed and the sync ran
    uncompressed without a word."""
    r = _vmigrate(_params(tmp_path, ssh_stdlib_host, lab, "zstd"), "preflight")
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "[FAIL] compression: [datastore1] -> [datastore1]: ssh_compress zstd is requested" in out, out
    assert "set ssh_compress to auto" in r.stderr, r.stderr
    assert not (tmp_path / "ws-zstd").exists()


def test_journal_records_codec_and_wire_bytes(ssh_loopback: SshHost, lab: Path,
                                              tmp_path: Path) -> None:
    """Each cycle's record names the codec that ran, the bytes on the wire and how many
    frames went compressed or as they are (the lab's disk content is random: zstd does
    not shrink it, so the agent sends it as it is and says so).  The host's python has no
    zstandard but the host has libzstd: auto runs zstd through it, and the preflight
    line and the journal say ``zstd-lib`` (``zstd-bin`` before the library codec).
    Before: the record had neither codec nor wire bytes, and a host without the module
    got zlib; it did not say why frames went as they were (``packer``)."""
    pf = _params(tmp_path, ssh_loopback, lab, "auto")
    r = _vmigrate(pf, "sync", "--cycles", "1")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert ("compression: [datastore1] -> [datastore1]: datastore1: auto -> zstd-lib "
            "(agent offers lz4, zlib, zstd)") in out, out
    journal = (tmp_path / "ws-auto" / "journal.jsonl").read_text().splitlines()
    cycles = [e for e in map(json.loads, journal) if e.get("type") == "cycle"]
    assert cycles, journal[-3:]
    rec = cycles[-1]
    disk = rec["disks"][0]
    assert rec["codecs"] == ["zstd-lib"] and disk["codec"] == "zstd-lib", rec
    assert disk["bytes_sent"] > 0 and disk["bytes_wire"] >= disk["bytes_sent"], disk
    assert disk["frames_raw"] > disk["frames_packed"], disk
    # and why: chunks tried that did not shrink (the rest paused), the longest joined frame
    packer = disk["packer"]
    assert packer["no_gain"] >= 1 and packer["no_gain"] <= disk["frames_raw"], disk
    assert set(packer) == {"no_gain", "off_for_rate", "ldm_off", "stream", "level_max",
                           "span_max"}, disk
    assert packer["level_max"] >= 1, disk
    assert rec["bytes_wire"] == disk["bytes_wire"]
