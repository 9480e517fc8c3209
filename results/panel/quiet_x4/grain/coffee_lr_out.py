"""Where a x4 model's LR leaves [0, 1] on coffee with its chroma doubled: how many LR values, where (session 20).

Run from the repository root, with the weights files to measure (the runs' are /tmp copies):
.venv/bin/python results/panel/quiet_x4/grain/coffee_lr_out.py LABEL=WEIGHTS ...
"""

import datetime
import sys

import numpy as np
import skimage.data
import torch

from irnlib.experiments.saturation_stress import saturate
from irnlib.imaging.images import to_batch
from irnlib.model.checkpoint import load_checkpoint
from irnlib.runtime.paths import sha256_file
from irnlib.runtime.provenance import cpu_model, git_commit

torch.set_num_threads(1)
print(f"# commit {git_commit()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; CPU {cpu_model()}")
print("# coffee x2 (chroma doubled about its luma), mod-cropped to 4; the LR before quantisation, 3 x 100 x 150 values")
img = saturate(skimage.data.coffee(), 2.0)
img = img[: img.shape[0] // 4 * 4, : img.shape[1] // 4 * 4]
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    net = load_checkpoint(path).eval()
    with torch.inference_mode():
        lr = net(to_batch(img))[0, :3].numpy()  # (3, 100, 150)
    out = np.argwhere(lr < -0.1)  # (n, 3): channel, row, column
    c, y, x = np.unravel_index(lr.argmin(), lr.shape)
    where = (
        f"rows {out[:, 1].min()}..{out[:, 1].max()}, columns {out[:, 2].min()}..{out[:, 2].max()}"
        if len(out)
        else "none"
    )
    channels = ",".join("RGB"[k] for k in sorted(set(out[:, 0]))) if len(out) else "-"
    print(
        f"{label} ({sha256_file(path)[:12]}): LR min {lr.min():.3f} at channel {'RGB'[c]}, row {y}, column {x}; "
        f"{len(out)} values below -0.1 (channels {channels}; {where}); {(lr < 0).sum()} below 0"
    )
