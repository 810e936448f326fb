"""xxh3_128 through the host's libxxhash (agent/hashing.py) where python has no xxhash.

The seed's certify digests run on both hosts over every byte (the source as it streams,
the destination as it reads back): sha1 at ~1.5 GB/s per core here against ~9 GB/s for
XXH3_128bits.  Its digest must equal python-xxhash's (the venv's module, the peer that is
not our code), so an agent with the module and one with the library agree.  What only a
real ESXi host would show: whether it has libxxhash (not known here).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.peers import codeclibs
from vmigrate_lib.dataplane.agent import hashing
from vmigrate_lib.dataplane.agent import protocol as proto


def test_library_digest_is_the_modules() -> None:
    """Empty, short, 1 MiB and odd sizes, bytes and memoryview slices (what the stream
    digester hands over)."""
    xxhash = pytest.importorskip("xxhash")
    func = hashing._xxh3_lib()
    if func is None:
        pytest.skip("no libxxhash here")
    data = os.urandom(3 << 20)
    for b in (b"", b"abc", data[: 1 << 20], data[5:123_457]):
        assert func(b) == xxhash.xxh3_128(b).digest()
    view = memoryview(data)
    assert func(view[7:1 << 20]) == xxhash.xxh3_128(data[7:1 << 20]).digest()


def _algorithms(tmp_path: Path, env: dict[str, str]) -> list[str]:
    dataplane = Path(proto.__file__).resolve().parents[1]
    code = (f"import sys, json; sys.path.insert(0, {str(dataplane)!r}); "
            "from agent import hashing; print(json.dumps([n for n, _ in hashing.HASHERS]))")
    out = subprocess.run(["/usr/bin/python3", "-S", "-c", code], capture_output=True,
                         text=True, check=True, env=env, cwd=tmp_path)
    names: list[str] = json.loads(out.stdout)
    return names


def test_agent_without_the_module_offers_xxh3_first(tmp_path: Path) -> None:
    """The system python3 (no xxhash module) offers xxh3_128 first where the host has
    the library, and not where the loader finds none.  Before: sha1 first (stdlib only)."""
    if not os.access("/usr/bin/python3", os.X_OK) or hashing._xxh3_lib() is None:
        pytest.skip("no system python3 or no libxxhash here")
    env = {"PATH": os.environ.get("PATH", "")}
    assert _algorithms(tmp_path, env)[0] == "xxh3_128"
    env["LD_LIBRARY_PATH"] = codeclibs.mask_dir(str(tmp_path / "nolibs"))
    assert "xxh3_128" not in _algorithms(tmp_path, env)
