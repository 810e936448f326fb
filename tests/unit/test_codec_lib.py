"""zstd and lz4 through the host's libraries via ctypes (agent/codeclib.py), against the
``zstd`` and ``lz4`` tools: the peers that are not our code.

A frame the library makes decodes with ``zstd -d``/``lz4 -d``, and the tools' frames (made
from a pipe: no content size in the header) decode with the library; corrupt or truncated
frames are refused, never returned short.  What only a real ESXi host would show: whether
it has these libraries (not known here) and their versions (these are Debian's libzstd 1.5.4
and liblz4 1.9.4; the calls used are in zstd's stable API since 1.3 and lz4frame since 1.8).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from vmigrate_lib.dataplane.agent import codeclib
from vmigrate_lib.dataplane.agent import protocol as proto

MiB = 1 << 20
TOOL_D = {"zstd": ["zstd", "-d", "-q", "-c"], "lz4": ["lz4", "-d", "-q", "-c"]}
TOOL_C = {"zstd": ["zstd", "-1", "-q", "-c"], "lz4": ["lz4", "-1", "-q", "-c"]}


def _need(name: str) -> tuple[Any, Any]:
    funcs = codeclib.lib_codec(name)
    if funcs is None or shutil.which(name) is None:
        pytest.skip(f"no lib{name} or no {name} tool here (scripts/setup.sh installs both)")
    return funcs[0], funcs[1]


def _tool(argv: list[str], data: bytes) -> bytes:
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


def _content() -> bytes:
    """Text-like and random parts, 9 MiB: more than one output step (PART) of 4 MiB."""
    text = b"".join(b"%08d a line of a log file %d\n" % (i, i % 13) for i in range(150_000))
    return (text + os.urandom(2 * MiB) + bytes(MiB) + text)[: 9 * MiB]


@pytest.mark.parametrize("name", ["zstd", "lz4"])
def test_frames_decode_with_the_tool_and_back(name: str) -> None:
    """Library -> tool and tool -> library, for a 9 MiB payload, an empty one and a byte."""
    compress, decompress = _need(name)
    for data in (_content(), b"", b"x"):
        assert _tool(TOOL_D[name], compress(data, 1)) == data
        assert decompress(_tool(TOOL_C[name], data)) == data
        assert decompress(compress(data, 1)) == data


@pytest.mark.parametrize("name", ["zstd", "lz4"])
def test_corrupt_or_truncated_frames_are_refused(name: str) -> None:
    """A truncated frame or one with flipped bytes raises (ProtocolError through
    decode_payload), never returns fewer bytes."""
    compress, decompress = _need(name)
    frame = compress(_content(), 1)
    with pytest.raises(codeclib.CodecFailed):
        decompress(frame[: len(frame) // 2])
    with pytest.raises(codeclib.CodecFailed):
        decompress(b"not a frame at all" * 10)
    tool_frame = _tool(TOOL_C[name], _content())
    with pytest.raises(codeclib.CodecFailed):
        decompress(tool_frame[:-100])
    flag = proto.FLAG_ZSTD if name == "zstd" else proto.FLAG_LZ4
    if proto.CODEC_IMPL.get(name) == "lib":
        with pytest.raises(proto.ProtocolError):
            proto.decode_payload(flag, frame[: len(frame) // 2])


def test_threads_share_contexts_safely() -> None:
    """Eight threads compressing and decoding at once (the packer's pool) each get their
    own native context and buffer: every result is right."""
    compress, decompress = _need("zstd")
    parts = [os.urandom(64 * 1024).hex().encode() * 4 + bytes([i]) * 1000 for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        packed = list(pool.map(lambda b: compress(b, 1), parts))
        back = list(pool.map(decompress, packed))
    assert back == parts


def test_preference_module_then_library_then_tool() -> None:
    """The venv's python has zstandard: zstd runs the module, lz4 the library; the system
    python3 (no zstandard) runs both through the libraries, before the tools on PATH.
    Before: the system python3 named ``bin`` for both (no library codec)."""
    codecs, impl, _longs, _streams = proto._codecs()
    assert impl["zlib"] == "module" and "zstd" in codecs
    if codeclib.lib_codec("lz4") is not None:
        assert impl["lz4"] == "lib"
    try:
        import zstandard  # noqa: F401
        assert impl["zstd"] == "module"
    except ImportError:
        assert impl["zstd"] == "lib"
    if not os.access("/usr/bin/python3", os.X_OK) or codeclib.lib_codec("zstd") is None:
        pytest.skip("no system python3 or no libzstd here")
    # the agent package alone, as the zipapp carries it (the system python3 has no deps)
    dataplane = Path(proto.__file__).resolve().parents[1]
    code = (f"import sys; sys.path.insert(0, {str(dataplane)!r}); from agent import protocol as p; "
            "print(sorted(p.CODEC_IMPL.items()), p.codec_label('zstd'), p.ZSTREAM is not None)")
    out = subprocess.run(["/usr/bin/python3", "-S", "-c", code], capture_output=True,
                         text=True, check=True, env={"PATH": os.environ.get("PATH", "")})
    want = sorted({"zlib": "module", "zstd": "lib", "lz4": "lib"}.items())
    # and libzstd's stream (a direct push's one window across frames) without the module
    assert out.stdout.strip() == f"{want} zstd-lib True", out.stdout


def test_module_codec_from_many_threads() -> None:
    """Where python has zstandard (the venv here), the packer's threads each get their
    own compressor and decompressor: python-zstandard's objects are not thread safe
    (https://python-zstandard.readthedocs.io/en/latest/compressor.html, "assume instances
    are not thread safe").  Before: one shared ZstdCompressor; eight threads at once
    crashed the process (Segmentation fault)."""
    if proto.CODEC_IMPL.get("zstd") != "module":
        pytest.skip("no zstandard module in this python")
    _flag, compress, decompress = proto.CODECS["zstd"]
    parts = [os.urandom(256 * 1024).hex().encode() * 2 + bytes([i]) * 999 for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        packed = list(pool.map(lambda b: compress(b, 1), parts))
        back = list(pool.map(decompress, packed))
    assert back == parts
