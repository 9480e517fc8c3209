"""Per InvBlock: the share of the coupling's log-gain s beyond ±0.9, and its largest value, on 48
random 96² crops of the training images against embedded-test `coffee`, for each model given.

    python results/panel/stress_x4/s_signs.py LABEL=WEIGHTS ... > s_signs.txt   (IRN_DATA set)

s = 2·sigmoid(H(y1)) − 1: s > 0 multiplies the latent part (at most e), s < 0 shrinks it.
"""

import sys

import numpy as np
import skimage.data
import torch

from irnlib.data.folders import list_images
from irnlib.experiments.panel_cause import operation_names
from irnlib.imaging.images import load_image, to_batch
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.network import InvBlock

torch.set_num_threads(1)


def log_gains(net, x):
    out = {}
    with torch.no_grad():
        for op, name in zip(net.operations, operation_names(net), strict=True):
            if isinstance(op, InvBlock):
                out[name] = op.log_scale(x[:, : op.split] + op.F(x[:, op.split :])).flatten()
            x = op(x)
    return out


rng = np.random.default_rng(0)
paths = list_images("T91") + list_images("BSD200")
crops = []
for p in rng.choice(paths, 48, replace=False):
    im = load_image(p)
    i, j = rng.integers(0, im.shape[0] - 96), rng.integers(0, im.shape[1] - 96)
    crops.append(im[i : i + 96, j : j + 96])
train = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
coffee = to_batch(skimage.data.coffee())
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    net = load_checkpoint(path).eval()
    st, sc = log_gains(net, train), log_gains(net, coffee)
    print(f"\n{label} ({path})")
    head = ("train s<-.9", "s>.9", "max s", "coffee s<-.9", "s>.9", "max s")
    print(f"{'InvBlock':22s} {head[0]:>11s} {head[1]:>7s} {head[2]:>7s} | {head[3]:>12s} {head[4]:>7s} {head[5]:>7s}")
    for k in st:
        a, b = st[k], sc[k]
        print(
            f"{k:22s} {(a < -0.9).float().mean():11.4f} {(a > 0.9).float().mean():7.4f} {a.max():7.3f} | "
            f"{(b < -0.9).float().mean():12.4f} {(b > 0.9).float().mean():7.4f} {b.max():7.3f}"
        )
