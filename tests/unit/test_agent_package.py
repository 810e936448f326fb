"""The agent package is stdlib-only and runs as a zipapp on a bare python3."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.peers import codeclibs
from vmigrate_lib.dataplane.agent import protocol as proto
from vmigrate_lib.dataplane.transport import AGENT_PACKAGE, ZIPAPP_PACKAGE, agent_zipapp

#: Optional accelerators: allowed only inside ``try: ... except ImportError``.
OPTIONAL = {"xxhash", "blake3", "zstandard"}
SYSTEM_PYTHON = "/usr/bin/python3"


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(top-level module, guarded by ``except ImportError``) for every absolute import."""
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Try):
            catches = any(
                isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers
            )
            for child in node.body:
                visit(child, guarded or catches)
            for other in (*node.handlers, *node.orelse, *node.finalbody):
                visit(other, guarded)
            return
        if isinstance(node, ast.Import):
            out.extend((a.name.split(".")[0], guarded) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.split(".")[0], guarded))
        for sub in ast.iter_child_nodes(node):
            visit(sub, guarded)

    visit(tree, False)
    return out


def test_agent_imports_only_the_stdlib() -> None:
    modules = sorted(AGENT_PACKAGE.glob("*.py"))
    assert {m.name for m in modules} >= {"protocol.py", "server.py", "__main__.py"}
    bad = []
    for path in modules:
        for name, guarded in _imports(ast.parse(path.read_text(), str(path))):
            if name in sys.stdlib_module_names:
                continue
            if name in OPTIONAL and guarded:
                continue
            bad.append(f"{path.name}: import {name}" + (" (unguarded)" if name in OPTIONAL else ""))
    assert not bad, "the agent must be stdlib-only: " + ", ".join(bad)


def test_agent_syntax_stays_python35() -> None:
    """No f-strings, no annotations, no walrus: ESXi 6.7's python3 is 3.5."""
    for path in sorted(AGENT_PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path), feature_version=(3, 5))
        for node in ast.walk(tree):
            assert not isinstance(node, ast.JoinedStr), f"{path.name}:{node.lineno}: f-string"
            assert not isinstance(node, ast.AnnAssign), f"{path.name}:{node.lineno}: annotation"
            if isinstance(node, ast.FunctionDef):
                assert node.returns is None, f"{path.name}:{node.lineno}: return annotation"


def test_zipapp_is_deterministic_and_holds_the_package() -> None:
    data, digest = agent_zipapp()
    assert digest == hashlib.sha256(data).hexdigest()[:16]
    agent_zipapp.cache_clear()
    assert agent_zipapp() == (data, digest)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names == sorted(names) and "__main__.py" in names
    assert {f"{ZIPAPP_PACKAGE}/{p.name}" for p in AGENT_PACKAGE.glob("*.py")} <= set(names)


def _frame(ftype: int, obj: dict) -> bytes:
    payload = json.dumps(obj).encode()
    return proto.pack_frame(ftype, payload) + payload


def test_zipapp_runs_on_the_system_python_without_our_packages(tmp_path: Path) -> None:
    """Debian's /usr/bin/python3 has none of the venv's packages: HELLO, then a hash."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} not present")
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(agent_zipapp()[0])
    disk = os.urandom(300_000)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "d.flat").write_bytes(disk)
    stdin = (_frame(proto.HELLO, {"version": proto.PROTOCOL_VERSION})
             + _frame(proto.REQ, {"op": "hash", "path": "d.flat", "block": 65536,
                                  "algorithm": "sha256"})
             + _frame(proto.REQ, {"op": "quit"}))
    # no PYTHONPATH: nothing of ours; a PATH without the zstd/lz4 tools the agent would use,
    # and their libraries masked (tests/peers/codeclibs.py)
    env = {"PATH": str(tmp_path / "no-tools"), "PYTHONNOUSERSITE": "1",
           "LD_LIBRARY_PATH": codeclibs.mask_dir(str(tmp_path / "nolibs"))}
    out = subprocess.run([SYSTEM_PYTHON, "-S", str(pyz), "--root", str(tmp_path / "ds")],
                         input=stdin, capture_output=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr.decode()
    r = io.BytesIO(out.stdout)
    ftype, _f, _a, payload, _raw = proto.read_frame(r)
    assert ftype == proto.HELLO
    hello = json.loads(payload)
    assert hello["version"] == proto.PROTOCOL_VERSION and hello["agent"] == "vmigrate-agent"
    # -S: no site-packages at all and no codec binary, so only the stdlib hashes and zlib
    assert "xxh3_128" not in hello["algorithms"] and "sha256" in hello["algorithms"]
    assert hello["compression"] == ["zlib"]
    digests = b""
    while True:
        ftype, _f, _a, payload, _raw = proto.read_frame(r)
        if ftype != proto.DIGESTS:
            break
        digests += payload
    assert ftype == proto.END and json.loads(payload) == {"blocks": 5}
    step = proto.DIGEST_ENTRY.size + 32
    got = [digests[i + proto.DIGEST_ENTRY.size : i + step] for i in range(0, len(digests), step)]
    assert got == [hashlib.sha256(disk[o : o + 65536]).digest() for o in range(0, len(disk), 65536)]
