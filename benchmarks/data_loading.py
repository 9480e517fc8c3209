"""Training-data throughput: batches of 16 HR patches of 144² (and their LR) cut from 2K images.

Compares where the HR pixels come from (decoding the PNG for every sample, the decoded images
held in memory, or the memory-mapped ``.npy`` cache of ``TrainingPatches(cache_dir=...)``) and
where the LR reference comes from (``imresize`` of each patch on the fly, as ``TrainingPatches``
does, or a crop of a cached whole-image LR, as the official IRN code does). Also the test-set
side: computing an LR reference versus reading it from the PNG cache.

Uses the first 8 images of DIV2K_train_HR under the data root when present, otherwise 8
synthetic 2040×1356 PNGs (scikit-image photographs enlarged, with a little noise) in a
temporary folder. Prints Markdown tables. Usage: ``python benchmarks/data_loading.py [--root R]``.

Measured 2026-11-25 on the 2-core development VM (torch 2.13.0+cpu, 2 threads, synthetic
images, ``OMP_WAIT_POLICY=PASSIVE``; other jobs were running on the machine), s per batch of 16:

============================  ==============================  ======  ======
HR pixels from                LR reference                    ×2      ×4
============================  ==============================  ======  ======
PNG decoded for every sample  imresize per patch              1.32    1.29
decoded images in memory      imresize per patch              0.015   0.015
memory-mapped .npy cache      imresize per patch              0.014   0.015
memory-mapped .npy cache      imresize per batch              0.011   0.010
decoded images in memory      crop of cached whole-image LR   0.0035  0.0030
============================  ==============================  ======  ======

So: decoding is what costs (95 ms per 2K PNG); with decoded images cached, a batch costs about
15 ms, of which the on-the-fly LR is about 12 ms: negligible next to a training step, so
``TrainingPatches`` keeps computing the LR from each patch, which keeps the LR exactly
``imresize(HR patch)`` (the cached whole-image LR differs by up to 6.4/255 near patch borders).
Without ``OMP_WAIT_POLICY=PASSIVE``, while other processes load the machine, torch's OpenMP
threads spin and the same rows take 0.14-0.6 s; a 2K test image's uint8 LR took 0.2-0.8 s to
compute against 8-23 ms to read from the PNG cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import median_seconds  # benchmarks/timing.py (the script's folder is on sys.path)

from irnlib import imresize
from irnlib.data.folders import list_images
from irnlib.data.lr_cache import lr_reference
from irnlib.data.patches import TrainingPatches
from irnlib.imaging.images import load_image, mod_crop, save_png
from irnlib.runtime.paths import data_root

BATCH, PATCH, IMAGES = 16, 144, 8


def div2k_like_images(folder: Path) -> list[Path]:
    """8 PNGs of 2040×1356: real photographs enlarged (bicubic) plus mild noise, so that PNG
    compression and decoding cost about what DIV2K's do."""
    rng = np.random.default_rng(0)
    paths = []
    photos = (list_images("embedded-test") + list_images("embedded-train"))[:IMAGES]
    for photo in photos:
        big = Image.fromarray(load_image(photo)).resize((2040, 1356), Image.BICUBIC)
        big = np.asarray(big, dtype=np.int16) + rng.normal(0, 2, (1356, 2040, 3)).round().astype(np.int16)
        paths.append(save_png(folder / f"{photo.stem}.png", np.clip(big, 0, 255).astype(np.uint8)))
    return paths


def decode_every_sample(paths, scale, seed=0):
    """No cache at all: decode the image for every sample, then crop, then imresize the patch."""
    patches = TrainingPatches(paths, scale, PATCH, seed)
    state = {"k": 0}

    def batch():
        for _ in range(BATCH):
            patches.forget_images()  # the next crop decodes the image again
            patches[state["k"]]
            state["k"] += 1

    return batch


def from_dataset(patches: TrainingPatches):
    state = {"k": 0}

    def batch():
        hr, lr = zip(*(patches[state["k"] + i] for i in range(BATCH)))
        state["k"] += BATCH
        return torch.stack(hr), torch.stack(lr)

    return batch


def batched_lr(patches: TrainingPatches):
    """HR crops per item, then one imresize call for the whole batch (same values, bit for bit)."""
    state = {"k": 0}

    def batch():
        crops = np.stack([patches.crop(state["k"] + i) for i in range(BATCH)])
        state["k"] += BATCH
        hr = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
        return hr, imresize(hr, 1 / patches.scale)

    return batch


class CachedLRPatches:
    """The alternative: LR = a crop of the whole image's float LR, computed once per image
    (the official IRN data pipeline computes it per sample). HR crops are aligned to the scale
    grid. Differs from ``imresize(HR patch)`` near the patch border, where the whole-image
    resize sees the neighbouring pixels instead of the mirrored patch."""

    def __init__(self, images: list[np.ndarray], scale: int, seed: int = 0):
        self.images, self.scale, self.seed = images, scale, seed
        self.lrs = [
            imresize(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255, 1 / scale)[0] for img in images
        ]

    def __getitem__(self, k):
        rng = np.random.default_rng((self.seed, k))
        j = int(rng.integers(len(self.images)))
        img, lr_img, s, p = self.images[j], self.lrs[j], self.scale, PATCH // self.scale
        top = int(rng.integers(img.shape[0] // s - p + 1))
        left = int(rng.integers(img.shape[1] // s - p + 1))
        hr = torch.from_numpy(np.ascontiguousarray(img[top * s : top * s + PATCH, left * s : left * s + PATCH]))
        hr = hr.permute(2, 0, 1).float() / 255.0
        lr = lr_img[:, top : top + p, left : left + p]
        hflip, vflip, transpose = rng.random(3) < 0.5
        if hflip:
            hr, lr = hr.flip(-1), lr.flip(-1)
        if vflip:
            hr, lr = hr.flip(-2), lr.flip(-2)
        if transpose:
            hr, lr = hr.transpose(-1, -2), lr.transpose(-1, -2)
        return hr.contiguous(), lr.contiguous()


def border_difference(patches: CachedLRPatches, n: int = 64) -> tuple[float, float]:
    """Max |cached-LR crop − imresize(HR patch)| at the patch border (3 LR pixels) and inside."""
    edge = inner = 0.0
    for k in range(n):
        hr, lr = patches[k]
        diff = (lr - imresize(hr[None], 1 / patches.scale)[0]).abs()
        inner = max(inner, float(diff[:, 3:-3, 3:-3].max()))
        diff[:, 3:-3, 3:-3] = 0
        edge = max(edge, float(diff.max()))
    return edge * 255, inner * 255


def training_table(paths: list[Path], cache: Path) -> None:
    decode_s = median_seconds(lambda: load_image(paths[0]), repeats=3)
    start = time.perf_counter()
    TrainingPatches(paths, 4, PATCH, cache_dir=cache).image(0)  # decode + write one .npy
    npy_s = time.perf_counter() - start
    images = [load_image(p) for p in paths]
    print(
        f"\nOne-time costs per image: PNG decode {decode_s * 1e3:.0f} ms; decode + write the .npy cache "
        f"{npy_s * 1e3:.0f} ms; .npy size {images[0].nbytes / 1e6:.1f} MB."
    )
    print(f"\n| scale | HR pixels from | LR reference | s / batch of {BATCH} | patches/s |")
    print("| --- | --- | --- | --- | --- |")
    for scale in (2, 4):
        in_memory = TrainingPatches(paths, scale, PATCH)
        mapped = TrainingPatches(paths, scale, PATCH, cache_dir=cache)
        for j in range(len(paths)):  # warm: every image decoded / cached once
            in_memory.image(j), mapped.image(j)
        cached_lr = CachedLRPatches(images, scale)
        rows = [
            ("PNG decoded for every sample", "imresize per patch", decode_every_sample(paths, scale), 1),
            ("decoded images in memory", "imresize per patch", from_dataset(in_memory), 5),
            ("memory-mapped .npy cache", "imresize per patch", from_dataset(mapped), 5),
            ("memory-mapped .npy cache", "imresize per batch", batched_lr(mapped), 5),
            ("decoded images in memory", "crop of cached whole-image LR", from_dataset(cached_lr), 5),
        ]
        for source, lr, fn, repeats in rows:
            t = median_seconds(fn, repeats)
            print(f"| ×{scale} | {source} | {lr} | {t:.4f} | {BATCH / t:.0f} |")
        if scale == 4:
            edge, inner = border_difference(cached_lr)
    print(
        f"\nThe cached whole-image LR differs from imresize(HR patch) by up to {edge:.2f}/255 in the "
        f"3-pixel LR border band and {inner:.1e}/255 inside (×4)."
    )


def test_pair_table(paths: list[Path], cache: Path) -> None:
    print("\n| scale | LR of a 2040×1356 test image | ms per image |\n| --- | --- | --- |")
    for scale in (2, 4):
        hr = mod_crop(load_image(paths[0]), scale)
        compute = median_seconds(lambda: imresize(hr, 1 / scale), repeats=3)
        cache_file = cache / "lr" / f"x{scale}.png"
        lr_reference(hr, scale, cache_file, source=paths[0])
        reuse = median_seconds(lambda: lr_reference(hr, scale, cache_file, source=paths[0]), repeats=5)
        print(f"| ×{scale} | imresize (uint8, MATLAB rounding) | {compute * 1e3:.0f} |")
        print(f"| ×{scale} | read from the PNG cache (SHA-256 of source + decode) | {reuse * 1e3:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: IRN_DATA or data/)")
    args = parser.parse_args()
    print(
        f"Data loading on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, one process."
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        div2k = data_root(args.root) / "DIV2K_train_HR"
        if div2k.is_dir() and len(list(div2k.glob("*.png"))) >= IMAGES:
            paths = sorted(div2k.glob("*.png"))[:IMAGES]
            print(f"Images: the first {IMAGES} of {div2k}.")
        else:
            paths = div2k_like_images(tmp / "images")
            print(f"Images: {IMAGES} synthetic 2040×1356 PNGs (DIV2K_train_HR not found under the data root).")
        training_table(paths, tmp / "cache")
        test_pair_table(paths, tmp / "cache")


if __name__ == "__main__":
    main()
