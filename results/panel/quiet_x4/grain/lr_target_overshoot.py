"""How far the bicubic LR targets of the x4 training samples leave [0, 1], per kind (session 20).

The recipe of runs Zr/Zb/Zc: T91+BSD200, 48-pixel patches, seed 7, a quarter synthetic of five kinds.
Every synthetic item of the first 3,000 and every fifth photograph's. Run from the repository root:
IRN_DATA=../shared/datasets python results/panel/quiet_x4/grain/lr_target_overshoot.py
"""

import collections
import datetime

import numpy as np
import torch

from irnlib.data.folders import list_images
from irnlib.data.patches import TrainingPatches
from irnlib.runtime.provenance import cpu_model, git_commit

torch.set_num_threads(1)
print(f"commit {git_commit()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; CPU {cpu_model()}")
paths = list_images("T91+BSD200", "../shared/datasets")
tp = TrainingPatches(
    paths,
    4,
    48,
    7,
    True,
    lr_target="image",
    sampling="stream",
    batch_size=4,
    synthetic_fraction=0.25,
    synthetic_kinds=("flat", "gradient", "strokes", "highlights", "grain"),
)
stats = collections.defaultdict(list)
for k in range(3000):
    kind = tp.synthetic_kind(k)
    if kind is None and k % 5:
        continue
    hr, lr = tp[k]
    over = (lr - 1).clamp_min(0) + (-lr).clamp_min(0)
    stats[kind or "photo"].append(((over > 0).float().mean().item(), over.pow(2).sum().item(), over.max().item()))
for kind, v in stats.items():
    a = np.array(v)
    print(
        f"{kind:10s} n={len(a):4d} share_of_lr_pixels_out={a[:, 0].mean():.4f} "
        f"mean_sum_sq_excess={a[:, 1].mean():.5f} max_excess={a[:, 2].max():.4f} "
        f"share_of_patches_out={np.mean(a[:, 2] > 0):.2f}"
    )
