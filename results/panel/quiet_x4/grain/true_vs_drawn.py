"""The colour wheel and `gradients` upscaled from the 8-bit LR with the true z and with drawn ones.

Run from the repository root with exported weights as arguments:
``.venv/bin/python results/panel/quiet_x4/grain/true_vs_drawn.py models/kit_reference_x4/IRN_x4.pth ...``.
Per image: Y-PSNR (border 4) with the true z, the mean over 3 drawn z (seeds 0-2), and the RMS
difference (0..255, RGB) between the drawn-z and the true-z pictures: the drawn z's residue.
"""

import sys

import numpy as np
import torch

from irnlib.experiments.panel import panel_images
from irnlib.imaging.metrics import psnr
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.network import quantize

SCALE, DRAWS = 4, 3


def upscale(net, lr: torch.Tensor, z: torch.Tensor) -> np.ndarray:
    """The 8-bit RGB picture of ``net.inverse`` from ``lr`` and ``z``."""
    x = net.inverse(torch.cat((lr, z), 1))[:, :3].clamp(0, 1)
    return (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def main(paths: list[str]) -> None:
    torch.set_num_threads(2)
    images = panel_images(None, scale=SCALE)
    for path in paths:
        net, cells = load_checkpoint(path).eval(), []
        for name in ("skimage/colorwheel", "synthetic/gradients"):
            hr = images[name]
            hr = hr[: hr.shape[0] // SCALE * SCALE, : hr.shape[1] // SCALE * SCALE]
            with torch.no_grad():
                y = net(torch.from_numpy(hr).permute(2, 0, 1)[None].float() / 255)
                lr, z = quantize(y[:, :3]), y[:, 3:]  # (1, 3, h, w), (1, 45, h, w)
                true = upscale(net, lr, z)
                drawn = [
                    upscale(net, lr, torch.randn(z.shape, generator=torch.Generator().manual_seed(s)))
                    for s in range(DRAWS)
                ]
            residue = np.mean([np.sqrt(((d.astype(float) - true) ** 2).mean()) for d in drawn])
            cells.append(
                f"{name}: true z {psnr(true, hr, border=SCALE):.2f} dB, drawn z "
                f"{np.mean([psnr(d, hr, border=SCALE) for d in drawn]):.2f} dB, residue {residue:.2f}"
            )
        print(path, "|", " | ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
