"""Issue 27, session 23: what the ×4 model's error on the two smooth floor images is made of.

The draws' mean error (the bias) in Y, levels of 255, split into three orthogonal parts: the
image-wide s × s pattern (``irnlib.experiments.grid_pattern.grid_of``), the rest's mean over each
s × s cell (smooth, low-frequency) and what is left within the cells (a pattern that changes over
the image). Beside them the draws' spread about their mean and Bicubic & Bicubic's error (RMS).
The figure shows, for a 128 × 128 crop of each image: the HR (grey), the bias, its low-frequency
part and its within-cell part (mid-grey 0, ±3.2 levels full scale).

    python results/panel/grid_x4/bias_parts.py WEIGHTS OUT.png > OUT.txt
"""

import sys

import numpy as np
import torch
from PIL import Image

from irnlib.data.test_pairs import TestPair
from irnlib.experiments.floor_hold import FLOOR_IMAGES
from irnlib.experiments.grid_pattern import grid_of
from irnlib.experiments.panel import panel_images
from irnlib.imaging.images import mod_crop, to_batch
from irnlib.imaging.imresize import imresize
from irnlib.imaging.metrics import rgb_to_y
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import downscale, upscale
from irnlib.protocol.evaluate import bicubic_rescale
from irnlib.runtime.provenance import command_line

DRAWS = 8
torch.set_num_threads(1)
net = load_checkpoint(sys.argv[1]).eval()
s = net.scale
print(command_line("results/panel/grid_x4/bias_parts.py", sys.argv[1:]).replace("python -m ", "python ", 1))
print(f"\n{DRAWS} draws of z; RMS in levels of 255 over the image less a border of {s}")
images, tiles = panel_images(), []
for name in FLOOR_IMAGES.values():
    hr = mod_crop(images[name], s)
    with torch.inference_mode():
        lr = downscale(net, to_batch(hr))
        draws = [upscale(net, lr, generator=torch.Generator().manual_seed(d))[0] for d in range(DRAWS)]
    draws_y = np.stack([rgb_to_y(x.permute(1, 2, 0).double().numpy() * 255) for x in draws])
    hr_y = rgb_to_y(hr)
    crop = (slice(s, -s), slice(s, -s))
    bias = (draws_y.mean(0) - hr_y)[crop]
    spread = (draws_y - draws_y.mean(0))[(slice(None), *crop)]
    h, w = bias.shape
    grid = np.tile(grid_of(bias, s), (h // s, w // s))
    rest = bias - grid
    low = np.kron(rest.reshape(h // s, s, w // s, s).mean(axis=(1, 3)), np.ones((s, s)))
    within = rest - low
    bicubic = rgb_to_y(bicubic_rescale(TestPair(name, hr, imresize(hr, 1 / s)), s))[crop] - hr_y[crop]

    def rms(a):
        return float(np.sqrt(np.mean(a**2)))

    print(
        f"{name}: bias {rms(bias):.3f} = image-wide pattern {rms(grid):.3f} + cell means {rms(low):.3f}"
        f" + within cells {rms(within):.3f} (squares add); draws about their mean {rms(spread):.3f};"
        f" Bicubic & Bicubic {rms(bicubic):.3f}"
    )
    c = slice(60, 188)
    tiles.append(np.concatenate([hr_y[crop][c, c], *(128 + 40 * part[c, c] for part in (bias, low, within))], 1))
figure = np.clip(np.concatenate(tiles, 0), 0, 255).astype(np.uint8)
Image.fromarray(figure).resize((figure.shape[1] * 2, figure.shape[0] * 2), Image.NEAREST).save(sys.argv[2])
