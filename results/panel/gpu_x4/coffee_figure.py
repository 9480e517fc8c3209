"""coffee.png: the LR and the latent around the blob on `coffee`, reference against the GPU stages.

Run from the repository root with the stages' run folders present:
    python results/panel/gpu_x4/coffee_figure.py
"""

import matplotlib
import numpy as np
import skimage.data
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from irnlib.imaging.images import to_batch  # noqa: E402
from irnlib.model.checkpoint import load_checkpoint  # noqa: E402
from irnlib.model.inference import forward  # noqa: E402

MODELS = {
    "reference": "models/kit_reference_x4/IRN_x4.pth",
    "stage A": "results/runs/gpu_x4/IRN_x4.pth",
    "stage B": "results/runs/gpu_x4_b/IRN_x4.pth",
}
LR_ROWS, LR_COLS = slice(64, 96), slice(104, 144)  # LR pixels around the blob (HR ×4)

hr = skimage.data.coffee()
fig, ax = plt.subplots(2, 4, figsize=(14, 6.5))
ax[0, 0].imshow(hr)
ax[0, 0].add_patch(plt.Rectangle((416, 256), 160, 128, fill=False, color="r"))
ax[0, 0].set_title("coffee (HR), box: the crops")
ax[1, 0].imshow(hr[256:384, 416:576])
ax[1, 0].set_title("HR crop")
for k, (name, path) in enumerate(MODELS.items(), start=1):
    net = load_checkpoint(path).eval()
    with torch.inference_mode():
        y = forward(net, to_batch(hr))[0]
    lr, z = y[:3].numpy(), y[3:].abs().amax(0).numpy()
    ax[0, k].imshow(np.clip(lr.transpose(1, 2, 0), 0, 1)[LR_ROWS, LR_COLS])
    ax[0, k].set_title(f"{name}: LR before rounding\n{lr.min():.2f} … {lr.max():.2f}", fontsize=10)
    shown = ax[1, k].imshow(z[LR_ROWS, LR_COLS], vmin=0, vmax=10)
    ax[1, k].set_title(f"{name}: largest |z| per LR pixel\n(max {z.max():.0f})", fontsize=10)
    plt.colorbar(shown, ax=ax[1, k], fraction=0.04)
for a in ax.flat:
    a.axis("off")
fig.tight_layout()
fig.savefig("results/panel/gpu_x4/coffee.png", dpi=72)
