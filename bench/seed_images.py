"""The disk images of bench_seed.py, built at run time from this machine's own files and
kept in a folder for the next run (see bench_seed.py's docstring for what each holds)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

MiB = 1 << 20
LIBMIX = ("x86_64-linux-gnu", "gcc", "python3.11")  #: /usr/lib folders of the libmix image


def sh(cmd: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, stdout=subprocess.DEVNULL)


def build_images(folder: Path, quick: bool, small: bool) -> dict[str, Path]:
    """The images (kept in ``folder`` and reused when present)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    out: dict[str, Path] = {}
    big = not (quick or small)
    tag = "-quick" if quick else "-small" if small else ""

    def make(name: str, build: Callable[[Path], None]) -> None:
        path = folder / f"{name}{tag}.img"
        if not path.exists():
            t0 = time.monotonic()
            tmp = path.with_suffix(".tmp")
            build(tmp)
            tmp.rename(path)
            print(f"  built {path.name} in {time.monotonic() - t0:.0f} s", flush=True)
        out[name] = path

    def ext4_of(src: str, size: str) -> Callable[[Path], None]:
        return lambda p: sh(f"rm -f {p}; truncate -s {size} {p}; mkfs.ext4 -q -F -d {src} {p}")

    if big:
        make("share", ext4_of("/usr/share", "1536M"))
        stage = folder / "libmix.d"
        if not (folder / "libmix.img").exists():
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir()
            for d in LIBMIX:
                sh(f"cp -a /usr/lib/{d} {stage}/")
        make("libmix", ext4_of(str(stage), "1536M"))
        shutil.rmtree(stage, ignore_errors=True)
        make("random", lambda p: sh(f"head -c {1024 * MiB} /dev/urandom > {p}"))
        make("zeros", lambda p: zeros(p, 1024 * MiB))
    else:
        make("share", ext4_of("/usr/share/doc", "256M") if quick else _share_subset(folder))
        make("random", lambda p: sh(f"head -c {256 * MiB} /dev/urandom > {p}"))
    for p in out.values():
        sh(f"cat {p} > /dev/null")  # warm: every method reads it from the page cache
    return out


def _share_subset(folder: Path) -> Callable[[Path], None]:
    """384 MiB ext4 of a ~220 MB slice of /usr/share (for the 100 Mbit/s link)."""
    def build(p: Path) -> None:
        stage = folder / "share-small.d"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        total = 0
        for d in sorted(Path("/usr/share").iterdir()):
            if total > 220e6 or not d.is_dir() or d.is_symlink():
                continue
            size = int(subprocess.run(["du", "-sb", str(d)], capture_output=True, text=True,
                                      check=True).stdout.split()[0])
            if total + size <= 240e6:
                sh(f"cp -a {d} {stage}/")
                total += size
        sh(f"rm -f {p}; truncate -s 384M {p}; mkfs.ext4 -q -F -d {stage} {p}")
        shutil.rmtree(stage, ignore_errors=True)
    return build


def zeros(path: Path, size: int) -> None:
    """Allocated zeros (not a hole) with 5% of its 64 KiB blocks random."""
    import random

    rnd = random.Random(3)
    with open(path, "wb") as f:
        f.write(bytes(size))
        for blk in rnd.sample(range(size // (64 * 1024)), size // (64 * 1024) // 20):
            f.seek(blk * 64 * 1024)
            f.write(os.urandom(64 * 1024))
