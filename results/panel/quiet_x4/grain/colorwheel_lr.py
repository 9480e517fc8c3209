"""The LR's range before quantisation on the panel's smooth images, per checkpoint (section 11).

Run from the repository root with the weights to compare, e.g. the /tmp copies of run Ze's exports:
    python results/panel/quiet_x4/grain/colorwheel_lr.py STAGE8.pth /tmp/w/ck/quietZe_x4_*/IRN_x4.pth
Prints one line per model: the colour wheel's, flat colours' and gradients' LR minimum and maximum
(the panel's forward pass, no tiling), and any other panel image whose LR leaves [-0.05, 1.05]; for the
colour wheel also where its LR maximum lies: the channel, the LR pixel, the HR colour there (the mean of
its scale x scale block) and how many LR values pass 1.02.
"""

import sys

import numpy as np
import torch

from irnlib.experiments.panel import panel_images
from irnlib.imaging.images import mod_crop, to_batch
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import forward
from irnlib.runtime.threads import apply_thread_policy

SMOOTH = ("skimage/colorwheel", "synthetic/flat_colours", "synthetic/gradients")

apply_thread_policy()
images = panel_images()
for path in sys.argv[1:]:
    net = load_checkpoint(path).eval()
    cells = []
    for name, img in images.items():
        with torch.inference_mode():
            lr = forward(net, to_batch(mod_crop(img, net.scale)))[:, : net.channels]
        lo, hi = lr.min().item(), lr.max().item()
        if name in SMOOTH or lo < -0.05 or hi > 1.05:
            cells.append(f"{name.split('/')[1]} {lo:.3f}..{hi:.3f}")
        if name == "skimage/colorwheel":
            s = net.scale
            channel, row, col = np.unravel_index(lr[0].argmax().item(), lr.shape[1:])
            colour = mod_crop(img, s)[s * row : s * row + s, s * col : s * col + s].reshape(-1, 3).mean(0)
            where = f"(max: channel {'RGB'[channel]}, LR ({row}, {col}), HR colour {tuple(int(v) for v in colour)}"
            cells.append(f"{where}, {(lr > 1.02).sum().item()} LR values > 1.02)")
    print(path, *cells, sep="  ", flush=True)
