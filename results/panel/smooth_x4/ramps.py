"""IRN against Bicubic & Bicubic on smooth ramps of chosen slopes (issue 27, the ×4 smooth floor).

Two families, 256×256, none of them a panel image or a training patch:
- ``hue ×k``: the panel's ``gradients`` construction with ``k`` turns of the hue circle across
  (a channel's slope about 6·k levels a pixel), brightness falling from top to bottom;
- ``zigzag L/px``: two colours blended along x by a triangle wave rising ``L`` levels a pixel.

One draw of z (seed 0), 8-bit LR, Y-PSNR with a border of the scale, as the panel measures.
``python results/panel/smooth_x4/ramps.py WEIGHTS... > ramps.txt``
"""

import sys

import numpy as np
import pandas as pd
import torch

from irnlib.experiments.panel import measure_image
from irnlib.model.checkpoint import load_checkpoint


def hue_sweep(turns: float, side: int = 256) -> np.ndarray:
    hue = np.linspace(0, 6 * turns, side, endpoint=False)[None, :] % 6
    value = np.linspace(1, 0, side)[:, None, None]
    rgb = np.stack([np.clip(np.abs(((hue + shift) % 6) - 3) - 1, 0, 1) for shift in (0, 4, 2)], axis=-1)
    return np.round(rgb * value * 255).astype(np.uint8)


def zigzag(levels_per_px: float, side: int = 256) -> np.ndarray:
    a, b = np.array([255.0, 40.0, 0.0]), np.array([0.0, 80.0, 255.0])  # the red channel moves 255
    t = (np.arange(side) * levels_per_px / 255.0) % 2
    t = np.where(t > 1, 2 - t, t)[None, :, None]
    return np.round(np.broadcast_to(a * (1 - t) + b * t, (side, side, 3))).astype(np.uint8)


def main(paths: list[str]) -> None:
    images = {f"hue x{k:g}": hue_sweep(k) for k in (0.5, 1, 2, 4, 8)}
    images.update({f"zigzag {v:g}/px": zigzag(v) for v in (0.25, 1, 4, 16)})
    rows = []
    for path in paths:
        net = load_checkpoint(path).eval()
        for name, img in images.items():
            row, _ = measure_image(net, name, img)
            rows.append(dict(weights=path, image=name, psnr_y_irn=row["psnr_y_irn"],
                             psnr_y_bicubic=row["psnr_y_bicubic"], psnr_gap_db=row["psnr_gap_db"]))  # fmt: skip
    frame = pd.DataFrame(rows)
    print(f"torch threads {torch.get_num_threads()}; one draw of z (seed 0)\n")
    print(frame.pivot(index="image", columns="weights", values="psnr_gap_db").round(2).loc[list(images)].to_string())
    print()
    print(frame.round(2).to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
