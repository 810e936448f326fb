"""Codecs through a binary on the host (``zstd``, ``lz4``) where Python has no module for them.

ESXi's python3 and most hosts' have no ``zstandard``; many Linux hosts have the ``zstd``
and ``lz4`` tools.  Each frame's payload goes through one short-lived process: a whole
stream through one long-lived pipe would hold the last partial block inside the tool
until more input came, and a checkpoint's ACK waits for data still in that buffer (a
deadlock).  One process per frame gives standard, self-contained zstd/lz4 frames (a peer
with the module decodes them alike), at a cost of about a millisecond per process: the
agent sends bigger frames when a binary compresses (:data:`BIN_CHUNK`).  Python 3.5,
stdlib only.
"""

import os
import subprocess

try:  # only for type comments
    import typing  # noqa: F401
except ImportError:  # pragma: no cover
    pass

#: the DATA frame size when a binary compresses: fewer processes per byte
BIN_CHUNK = 4 * 1024 * 1024

#: codec -> (binary, compress argv after the level, decompress argv)
TOOLS = {
    "zstd": ("zstd", ["-q", "-c"], ["-d", "-q", "-c"]),
    "lz4": ("lz4", ["-q", "-c"], ["-d", "-q", "-c"]),
}


def which(name, path=None):
    # type: (str, typing.Optional[str]) -> typing.Optional[str]
    """The executable ``name`` on ``PATH`` (shutil.which without its Windows cases)."""
    for folder in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        full = os.path.join(folder or ".", name)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return full
    return None


class CodecFailed(Exception):
    """The binary exited non-zero (its stderr says why)."""


def run(argv, data):
    # type: (typing.List[str], bytes) -> bytes
    """``data`` through ``argv``'s stdin, its stdout back (communicate: no pipe deadlock)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate(data)
    if proc.returncode != 0:
        raise CodecFailed("{} exited {}: {}".format(
            os.path.basename(argv[0]), proc.returncode, err.decode("utf-8", "replace").strip()[:300]))
    return out


def bin_codec(name, path=None):
    """``(compress(data, level), decompress(data))`` through the codec's binary, or None
    where the host has no such binary."""
    tool, cargs, dargs = TOOLS[name]
    exe = which(tool, path)
    if exe is None:
        return None

    def compress(data, level):
        return run([exe, "-{}".format(max(1, int(level)))] + cargs, bytes(data))

    def decompress(data):
        return run([exe] + dargs, bytes(data))

    return compress, decompress
