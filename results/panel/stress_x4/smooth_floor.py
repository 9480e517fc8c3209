"""Why the stress term lowers the smooth-image floor: a drawn z against the true z through the
inverse (`panel_cause.reconstruction_ablation` and `latent_response`), control against stress.

    python results/panel/stress_x4/smooth_floor.py LABEL=WEIGHTS ... > smooth_floor.txt
"""

import sys

import torch

from irnlib.experiments.panel_cause import (
    embedded_or_panel_image,
    latent_response,
    reconstruction_ablation,
    trace_forward,
)
from irnlib.imaging.images import mod_crop
from irnlib.model.checkpoint import load_checkpoint

torch.set_num_threads(1)
for name in ["synthetic/gradients", "skimage/colorwheel"]:
    for arg in sys.argv[1:]:
        label, path = arg.split("=", 1)
        net = load_checkpoint(path).eval()
        hr = mod_crop(embedded_or_panel_image(name, "T91+BSD200", 4), 4)
        _, y = trace_forward(net, hr)
        print(f"\n## {name}, {label} ({path})\n")
        print(reconstruction_ablation(net, hr, y).round(2).to_string())
        print(latent_response(net, hr, y).round(3).to_string(), flush=True)
