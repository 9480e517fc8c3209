"""Carry image datasets to a lent GPU losslessly in less space, and check them there.

The device tool sends at most 64 MiB a call. T91 + BSD200 + Set5 are 60 MiB of PNG; as lossless
WebP they are 41 MiB, which leaves room for the kit and a model to start from. ``pack`` writes each
dataset's images as lossless WebP with a manifest of their decoded pixels' SHA-256; ``unpack`` (on the
device) writes them back as PNG under a data root for ``IRN_DATA`` and stops with one line per image
whose pixels differ. The PNG files differ from the originals byte for byte (another encoder), their
pixels do not: the manifest is what says so.

    python benchmarks/gpu_data.py pack ../shared/datasets T91 BSD200 Set5 --out .gpu/data
    python3 benchmarks/gpu_data.py unpack .gpu/data /tmp/data          # on the device
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

MANIFEST = "pixels.json"


def pixel_digest(rgb: np.ndarray) -> str:
    """SHA-256 of a uint8 image's shape and pixels (what lossless re-encoding must keep)."""
    return hashlib.sha256(str(rgb.shape).encode() + np.ascontiguousarray(rgb).tobytes()).hexdigest()


def _map(fn, jobs: list, workers: int) -> list:
    """``fn`` over ``jobs`` in ``workers`` processes (in this one when ``workers`` is 1)."""
    if workers <= 1:
        return [fn(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, jobs))


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("RGB", "L") else im)


def _pack_one(job: tuple[Path, Path]) -> tuple[str, str]:
    src, dest = job
    pixels = _read(src)
    Image.fromarray(pixels).save(dest, lossless=True, quality=100, method=4, exact=True)
    return f"{dest.parent.name}/{dest.name}", pixel_digest(pixels)


def pack(root: Path, names: list[str], out: Path, workers: int = 2) -> dict[str, str]:
    """Write ``root/<name>/*.png`` as ``out/<name>/*.webp`` and ``out/pixels.json``; returns the manifest."""
    jobs = []
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
        pngs = sorted((root / name).glob("*.png"))
        if not pngs:
            raise FileNotFoundError(f"{root / name}: no PNG images; give a dataset folder under the data root")
        jobs += [(p, out / name / f"{p.stem}.webp") for p in pngs]
    manifest = dict(_map(_pack_one, jobs, workers))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=0, sort_keys=True))
    return manifest


def _unpack_one(job: tuple[Path, Path, str]) -> str | None:
    src, dest, want = job
    pixels = _read(src)
    if pixel_digest(pixels) != want:
        return f"{src}: decoded pixels differ from {MANIFEST}; pack it again from the original PNG"
    Image.fromarray(pixels).save(dest)
    return None


def unpack(packed: Path, root: Path, workers: int = 8) -> list[str]:
    """Write ``packed``'s images as PNG under ``root`` (one folder per dataset); returns the problems."""
    manifest = json.loads((packed / MANIFEST).read_text())
    jobs = []
    for rel, digest in manifest.items():
        dest = root / Path(rel).with_suffix(".png")
        dest.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((packed / rel, dest, digest))
    return [problem for problem in _map(_unpack_one, jobs, workers) if problem]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack", help="PNG datasets -> lossless WebP and a pixel manifest")
    p.add_argument("root", type=Path)
    p.add_argument("names", nargs="+")
    p.add_argument("--out", type=Path, required=True)
    u = verbs.add_parser("unpack", help="a packed folder -> PNG datasets, pixels checked")
    u.add_argument("packed", type=Path)
    u.add_argument("root", type=Path)
    parser.add_argument("--workers", type=int, default=8, help="processes (default 8)")
    args = parser.parse_args(argv)
    if args.verb == "pack":
        manifest = pack(args.root, args.names, args.out, args.workers)
        size = sum(f.stat().st_size for f in args.out.rglob("*.webp"))
        print(f"packed {len(manifest)} images into {args.out} ({size / 2**20:.1f} MiB)")
        return 0
    problems = unpack(args.packed, args.root, args.workers)
    print("\n".join(problems) or f"unpacked into {args.root}; every image's pixels match {MANIFEST}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
