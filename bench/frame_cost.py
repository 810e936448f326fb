"""What a frame shape costs the source's CPU and the wire, in-process, on one core.

The packer (vmigrate_lib/dataplane/agent/packing.py) chooses between 16 MiB zstd frames
with long-distance matching (LDM), the same frames without it, a frame per 1 MiB chunk,
and (a direct push on a slow link) one zstd stream across 16 MiB pieces, whose window
(2^24, 2^26 as the packer keeps, 2^27) reaches back across the pieces before.  This compresses the allocated data of a bench_seed image (built by
``bench/seed_images.py``; holes skipped, as a seed skips them) each way with the
agent's own codec (libzstd through ctypes where the zstandard module is absent), one
thread, and prints the bytes out and the CPU seconds (compress and decompress), each
shape ``--rounds`` times in turn (the machine's other work moves single runs)::

    .venv/bin/python bench/frame_cost.py [--image /tmp/vmigrate-bench-seed-images/share.img]

It measures the codec alone: the wire, the other end and the hashing are bench_seed's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmigrate_lib.dataplane.agent import packing
from vmigrate_lib.dataplane.agent import protocol as proto

MiB = 1 << 20


def allocated_pieces(path: Path, size: int) -> list[bytes]:
    """The file's data regions (SEEK_DATA/SEEK_HOLE) cut into pieces of ``size``."""
    out: list[bytes] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        off = 0
        while off < end:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after off
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            for p in range(start, stop, size):
                out.append(os.pread(fd, min(size, stop - p), p))
            off = stop
    finally:
        os.close(fd)
    return out


def _at_level(long: Callable[..., bytes], level: int) -> Callable[[bytes], bytes]:
    return lambda b: long(b, level, packing.window_log(len(b)), True)


def shapes(levels: list[int]) -> dict[str, tuple[int, Callable[[bytes], bytes]]]:
    """Label -> (piece size, compress one piece), as the packer would at level 1, then
    16 MiB LDM frames at each of ``levels`` (the levels a link-bound stream climbs to)."""
    compress = proto.CODECS["zstd"][1]
    long = proto.LONG_WINDOW.get("zstd")
    out: dict[str, tuple[int, Callable[[bytes], bytes]]] = {
        "1 MiB frames": (MiB, lambda b: compress(b, 1))}
    if long is not None:
        out["16 MiB, LDM"] = (packing.SPAN_MAX, lambda b: long(
            b, 1, packing.window_log(len(b)), True))
        out["16 MiB, no LDM"] = (packing.SPAN_MAX, lambda b: long(
            b, 1, packing.window_log(len(b)), False))
        for lv in levels:
            out[f"16 MiB, LDM, {lv}"] = (packing.SPAN_MAX, _at_level(long, lv))
    if proto.ZSTREAM is not None:  # a direct push's one stream (fresh each call)
        for lv in [1, *levels]:
            for wlog in (24, packing.STREAM_WLOG, 27):
                zs = proto.ZSTREAM[0](lv, wlog, True)
                out[f"stream 2^{wlog}, {lv}"] = (packing.SPAN_MAX, zs.compress)
    return out


def _decode_all(label: str, frames: list[bytes]) -> None:
    """Decode every frame: a stream's pieces in order through one decoder."""
    if label.startswith("stream"):
        assert proto.ZSTREAM is not None
        dec = proto.ZSTREAM[1]()
        for i, f in enumerate(frames):
            dec.decode(f, i == 0)
        return
    for f in frames:
        proto.FLAG_DECODERS[proto.FLAG_ZSTD](f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path,
                    default=Path("/tmp/vmigrate-bench-seed-images/share.img"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--levels", default="",
                    help="also 16 MiB LDM frames at these zstd levels (e.g. 3,6,9,12)")
    args = ap.parse_args()
    if "zstd" not in proto.CODECS:
        print("no zstd here (scripts/setup.sh installs the library)")
        return 2
    if not args.image.exists():
        print(f"{args.image} is missing: bench/bench_seed.py builds it")
        return 2
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{args.image.name}, zstd {proto.CODEC_IMPL['zstd']}, load {load}")
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    cut = {size: allocated_pieces(args.image, size) for size, _f in shapes(levels).values()}
    total = sum(len(p) for p in cut[MiB])
    print(f"data {total / MiB:.0f} MiB")
    for _ in range(max(1, args.rounds)):
        for label, (size, func) in shapes(levels).items():
            t = time.process_time()
            frames = [func(p) for p in cut[size]]
            c = time.process_time() - t
            t = time.process_time()
            _decode_all(label, frames)
            d = time.process_time() - t
            out = sum(len(f) for f in frames)
            print(f"  {label:22s} {out / MiB:7.1f} MiB out  compress {c:5.2f} CPU s "
                  f"({total / c / 1e6:4.0f} MB/s)  decompress {d:4.2f} s", flush=True)
    print(f"load after {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
