"""cap_intervention.md: which couplings the blow-up on `coffee` needs (a diagnostic, not a fix).

Stage B's forward pass on `coffee` with the coupling scale s capped at 0.9 (gain ≤ e^0.9 = 2.46
instead of e) in chosen InvBlocks; everything else unchanged. Run from the repository root with the
run folder present:  python results/panel/gpu_x4/cap_intervention.py
"""

import types

import skimage.data
import torch

from irnlib.experiments.panel_cause import operation_names
from irnlib.imaging.images import to_batch
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import downscale_health, forward
from irnlib.model.network import InvBlock
from irnlib.runtime.provenance import cpu_model, git_commit

CHECKPOINT = "results/runs/gpu_x4_b/IRN_x4.pth"
CAP = 0.9


def capped(self, y1, run_subnet=None):
    return InvBlock.log_scale(self, y1, *([run_subnet] if run_subnet else [])).clamp(max=CAP)


def blocks(level, numbers):
    return [f"level {level}: InvBlock {i}" for i in numbers]


GROUPS = {
    "none": [],
    "every InvBlock": blocks(1, range(1, 9)) + blocks(2, range(1, 9)),
    "level 1": blocks(1, range(1, 9)),
    "level 2": blocks(2, range(1, 9)),
    "level 2, InvBlocks 3–6 (where \\|z\\| grows by e)": blocks(2, range(3, 7)),
    **{f"level 1, InvBlock {i}": blocks(1, [i]) for i in range(1, 9)},
}

hr = skimage.data.coffee()
rows = []
for label, names in GROUPS.items():
    net = load_checkpoint(CHECKPOINT).eval()
    for op, name in zip(net.operations, operation_names(net), strict=True):
        if name in names:
            op.log_scale = types.MethodType(capped, op)
    with torch.inference_mode():
        health = downscale_health(net, forward(net, to_batch(hr), tile=None))
    rows.append(f"| {label} | {health.lr_min:.2f} … {health.lr_max:.2f} | {health.z_max:.2f} |")
lines = [
    f"# Stage B on `coffee` with s capped at {CAP} in some InvBlocks",
    "",
    f"`{CHECKPOINT}`; commit {git_commit()}; CPU {cpu_model()}. A diagnostic intervention at",
    "inference (it changes the model), not a fix.",
    "",
    "| s capped in | LR before rounding | largest \\|z\\| |",
    "| --- | --- | --- |",
    *rows,
    "",
]
open("results/panel/gpu_x4/cap_intervention.md", "w").write("\n".join(lines))
print("\n".join(lines))
