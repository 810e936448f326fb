"""The agent over a real OpenSSH sshd: copies, compression, host keys, auth, modes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.peers.sshd import SshHost, SshKeyPair, known_hosts_lines
from tests.ssh.sshdp import MiB, garbage, make_disk, open_agent_ds, settings_for
from vmigrate_lib.dataplane import open_ssh_datastore
from vmigrate_lib.dataplane.ssh import SshAgentDatastore, check_modes
from vmigrate_lib.dataplane.sshconfig import DirectRoute, SshSettings, parse_target
from vmigrate_lib.engine.copier import copy_extents
from vmigrate_lib.errors import AgentError, AuthenticationError, HostKeyError, ParameterError
from vmigrate_lib.extents import Extent
from vmigrate_lib.params import LabHostParams, VsphereHostParams

if TYPE_CHECKING:
    from tests.ssh.sshdp import SshHosts


def test_relay_copy_is_exact_and_sparse(ssh_loopback: SshHost, roots: tuple[Path, Path]) -> None:
    ra, rb = roots
    size = 24 * MiB
    want = make_disk(ra / "d", size)
    a, b = open_agent_ds(ssh_loopback, ra), open_agent_ds(ssh_loopback, rb)
    try:
        a.free_space()
        assert a.hello["features"] and "zlib" in a.hello["compression"]
        b.create_disk("d", size)
        ckpts: list[int] = []
        stats = copy_extents(a, "d", b, "d", a.allocated("d"), checkpoint_bytes=4 * MiB,
                             on_checkpoint=ckpts.append)
        assert (rb / "d").read_bytes() == want
        assert stats.bytes_zero > 0 and ckpts and ckpts[-1] <= size
        assert os.stat(rb / "d").st_blocks * 512 < os.stat(ra / "d").st_blocks * 512 + MiB
        da = list(a.hash_blocks("d", MiB, "sha256"))
        assert da == list(b.hash_blocks("d", MiB, "sha256")) and len(da) == 24
        assert b.free_space() > 0 and a.stat("d") is not None and "d" in a.listdir(".")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("codec,expect", [("zlib", "zlib"), ("auto", "zstd")])
def test_compression_negotiated(
    ssh_loopback: SshHost, roots: tuple[Path, Path], codec: str, expect: str | None
) -> None:
    """The host's python3 has no zstandard but the host has libzstd: zstd is offered
    through it, zlib always is (a host without the library: tests/ssh/test_codec_bin.py)."""
    ra, rb = roots
    text = b"".join(b"block %08d of compressible text\n" % i for i in range(200_000))
    (ra / "t").write_bytes(text)
    a, b = open_agent_ds(ssh_loopback, ra, compress=codec), open_agent_ds(ssh_loopback, rb, compress=codec)
    try:
        a.free_space()
        assert a.codec == expect
        assert a.hello["codec_impl"].get("zstd") == "lib"
        b.create_disk("t", len(text))
        copy_extents(a, "t", b, "t", [Extent(0, len(text))])
        assert (rb / "t").read_bytes() == text
    finally:
        a.close()
        b.close()


def test_unknown_host_key_is_a_clear_error(ssh_loopback: SshHost, tmp_path: Path) -> None:
    empty = tmp_path / "kh"
    empty.write_text("")
    ds = open_agent_ds(ssh_loopback, tmp_path, known_hosts=str(empty))
    with pytest.raises(HostKeyError, match="unknown host key") as ei:
        ds.free_space()
    assert ssh_loopback.host_key_fingerprint_sha256 in str(ei.value)
    ds.close()
    ok = open_agent_ds(ssh_loopback, tmp_path, known_hosts=str(empty), allow_unknown_host=True)
    assert ok.free_space() > 0
    ok.close()


def test_changed_host_key_is_refused(ssh_loopback: SshHost, tmp_path: Path) -> None:
    other = SshKeyPair.generate(tmp_path, "other")
    kh = tmp_path / "kh"
    kh.write_text("\n".join(known_hosts_lines(ssh_loopback.ip, ssh_loopback.port, other.pub_line)))
    ds = open_agent_ds(ssh_loopback, tmp_path, known_hosts=str(kh), allow_unknown_host=True)
    with pytest.raises(HostKeyError, match="CHANGED"):
        ds.free_space()
    ds.close()


def test_fingerprint_pinning(ssh_loopback: SshHost, tmp_path: Path) -> None:
    nowhere = str(tmp_path / "no_known_hosts")
    fp = ssh_loopback.host_key_fingerprint_sha256
    ds = open_agent_ds(ssh_loopback, tmp_path, known_hosts=nowhere, fingerprint=fp)
    assert ds.free_space() > 0
    assert ds.transport.conn.host_key_fingerprint == fp
    ds.close()
    bad = open_agent_ds(ssh_loopback, tmp_path, fingerprint="SHA256:" + "A" * 43)
    with pytest.raises(HostKeyError, match="not the pinned"):
        bad.free_space()
    bad.close()


def test_wrong_key_is_an_authentication_error(ssh_loopback: SshHost, tmp_path: Path) -> None:
    stranger = SshKeyPair.generate(tmp_path, "stranger")
    ds = open_agent_ds(ssh_loopback, tmp_path, key_filename=stranger.path)
    with pytest.raises(AuthenticationError, match="refused"):
        ds.free_space()
    ds.close()


def test_password_from_environment_only(
    ssh_password_loopback: SshHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = ssh_password_loopback
    root = tempfile.mkdtemp(prefix="vmg-pw-", dir="/tmp")  # reachable by the throwaway user
    os.chmod(root, 0o777)
    s = settings_for(h, key_filename="", password_env="VMG_TEST_PW")
    ds = open_ssh_datastore("pw", root, s)
    with pytest.raises(AuthenticationError, match="VMG_TEST_PW"):
        ds.free_space()
    ds.close()
    monkeypatch.setenv("VMG_TEST_PW", h.password or "")
    ds = open_ssh_datastore("pw", root, s)
    try:
        assert ds.free_space() > 0
    finally:
        ds.close()
        shutil.rmtree(root, ignore_errors=True)
    bad_root = open_ssh_datastore("pw", "/nonexistent-vmg", s)
    with pytest.raises(AgentError, match=r"could not start.*does not exist"):
        bad_root.free_space()
    bad_root.close()


def test_bandwidth_cap(ssh_loopback: SshHost, roots: tuple[Path, Path]) -> None:
    ra, _ = roots
    (ra / "r").write_bytes(os.urandom(8 * MiB))
    a = open_agent_ds(ssh_loopback, ra, bwlimit=4 * MiB)
    try:
        a.free_space()
        t0 = time.monotonic()
        n = sum(c.length for c in a.read_extents("r", [Extent(0, 8 * MiB)]))
        dt = time.monotonic() - t0
        assert n == 8 * MiB and dt >= 1.6, dt
    finally:
        a.close()


def test_settings_from_host_params() -> None:
    hp = LabHostParams(host="esx1", url="ssh://admin@10.0.0.5:2222",
                       ssh_key="/k", ssh_fingerprint="SHA256:abc", ssh_password_env="SSH_PW")
    s = SshSettings.from_host_params(hp, mode="direct")
    assert (s.host, s.port, s.user, s.key_filename, s.fingerprint, s.mode) == (
        "10.0.0.5", 2222, "admin", "/k", "SHA256:abc", "direct")
    # the API's password reference is never offered to sshd: only the SSH login's own
    assert s.password_env == "SSH_PW"
    no_ssh_pw = SshSettings.from_host_params(VsphereHostParams(host="h", password_env="API_PW"))
    assert no_ssh_pw.password_env == "" and no_ssh_pw.password_keyring == ""
    assert parse_target("[fe80::1]:22") == ("fe80::1", "root", 22)
    with pytest.raises(ParameterError):
        SshSettings(host="h", fingerprint="abc")
    with pytest.raises(ParameterError):
        SshSettings(host="h", mode="teleport")


@pytest.mark.netns
def test_direct_mode_between_namespaces(ssh_hosts: SshHosts, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    size = 32 * MiB
    want = make_disk(ra / "d", size, seed=7)
    route = DirectRoute(identity=ssh_hosts.peer_key.path, known_hosts=ssh_hosts.known_hosts_path)
    a = open_ssh_datastore("a", str(ra), settings_for(ssh_hosts.a, mode="direct", direct=route))
    b = open_ssh_datastore("b", str(rb), settings_for(ssh_hosts.b))
    assert isinstance(a, SshAgentDatastore)
    try:
        checks = {c.mode: c for c in check_modes(a, b)}
        assert checks["relay"].ok and checks["direct"].ok, checks
        garbage(rb / "d", size)
        ckpts: list[int] = []
        stats = copy_extents(a, "d", b, "d", [Extent(0, size)], checkpoint_bytes=8 * MiB,
                             on_checkpoint=ckpts.append)
        assert (rb / "d").read_bytes() == want
        assert a.last_summary.get("wire", 0) > 0  # it went through push
        assert len(ckpts) >= 2 and ckpts[-1] == size
        assert stats.bytes_zero > 0
    finally:
        a.close()
        b.close()
    # a cannot verify b's key: preflight says so, auto mode falls back to relay
    bad = DirectRoute(identity=ssh_hosts.peer_key.path, known_hosts="/dev/null")
    a = open_ssh_datastore("a", str(ra), settings_for(ssh_hosts.a, mode="auto", direct=bad))
    b = open_ssh_datastore("b", str(rb), settings_for(ssh_hosts.b))
    assert isinstance(a, SshAgentDatastore)
    try:
        checks = {c.mode: c for c in check_modes(a, b)}
        assert not checks["direct"].ok and "verification failed" in checks["direct"].detail
        garbage(rb / "d", size)
        copy_extents(a, "d", b, "d", [Extent(0, size)])
        assert (rb / "d").read_bytes() == want
        assert "acked_offset" not in a.last_summary  # relayed (only a push reports it)
    finally:
        a.close()
        b.close()


def test_lab_datastores_over_ssh(ssh_loopback: SshHost, tmp_path: Path) -> None:
    """A lab host with ``url: ssh://...`` serves its datastores through sshd."""
    from vmigrate_lib.control.factory import open_host

    os.chmod(tmp_path, 0o755)
    ds_dir = tmp_path / "lab" / "hosts" / "esx1" / "datastores" / "ds1"
    ds_dir.mkdir(parents=True)
    (ds_dir / "f").write_bytes(b"hello")
    h = ssh_loopback
    hp = LabHostParams(host="esx1", lab_root=str(tmp_path / "lab"),
                       url=f"ssh://{h.user}@{h.ip}:{h.port}", ssh_key=h.key_path,
                       ssh_known_hosts=h.known_hosts_path)
    host = open_host(hp)
    ds = host.open_datastore("ds1")
    try:
        assert isinstance(ds, SshAgentDatastore)
        assert ds.read_file("f") == b"hello"
        assert ds.hello["root"] == str(ds_dir.resolve())
    finally:
        ds.close()
