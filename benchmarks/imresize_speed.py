"""Throughput of irnlib.imaging.imresize (MATLAB bicubic) on a 2040×1356 RGB image; prints a table."""

import platform

import numpy as np
import torch
from timing import median_seconds  # benchmarks/timing.py (the script's folder is on sys.path)

from irnlib import imresize


def main():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1356, 2040, 3), dtype=np.uint8)
    batch = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    mpix = 1356 * 2040 / 1e6
    print(
        f"imresize on a 2040×1356 RGB image; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print("| input | scale | median s | input Mpix/s |\n| --- | --- | --- | --- |")
    for label, data in (("uint8 NumPy (MATLAB rounding)", img), ("float32 tensor", batch)):
        for scale in (1 / 2, 1 / 4):
            t = median_seconds(lambda: imresize(data, scale))
            print(f"| {label} | 1/{round(1 / scale)} | {t:.3f} | {mpix / t:.1f} |")


if __name__ == "__main__":
    main()
