"""Issue 27, session 23: how the ×4 reference's upscaling depends on the size of the latent it is given.

On the two smooth floor images: Y-PSNR (dB, border 4, float reconstruction clipped and rounded to
8 bits as the protocol does) of the upscaled 8-bit LR with (a) the image's own latent (what the
downscale produced), (b) that latent plus a little noise, (c) a draw of N(0, 1) scaled by a.

    python results/panel/grid_x4/latent_radius.py models/kit_reference_x4/IRN_x4.pth > latent_radius.txt
"""

import sys

import torch

from irnlib.experiments.floor_hold import FLOOR_IMAGES
from irnlib.experiments.panel import panel_images
from irnlib.imaging.images import mod_crop, to_batch, to_image
from irnlib.imaging.metrics import psnr
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import forward, inverse
from irnlib.model.network import quantize
from irnlib.runtime.provenance import command_line

torch.set_num_threads(1)
net = load_checkpoint(sys.argv[1]).eval()
s, c = net.scale, net.channels
print(command_line("results/panel/grid_x4/latent_radius.py", sys.argv[1:]).replace("python -m ", "python ", 1))
images = panel_images()
for name in FLOOR_IMAGES.values():
    hr = mod_crop(images[name], s)
    with torch.inference_mode():
        y = forward(net, to_batch(hr))
        lr, z_own = quantize(y[:, :c]), y[:, c:]
        noise = torch.randn(z_own.shape, generator=torch.Generator().manual_seed(0))

        def measured(z):
            return psnr(to_image(inverse(net, torch.cat((lr, z), 1))[:, :c]), hr, border=s)

        print(f"\n{name}: own latent std {z_own.std():.4f}, largest |z| {z_own.abs().max():.3f}")
        print(f"  own latent: {measured(z_own):.2f}")
        print(
            "  own latent + e·N(0,1):  "
            + "  ".join(f"e={e:g} {measured(z_own + e * noise):.2f}" for e in (0.001, 0.01, 0.1))
        )
        print(
            "  a·N(0,1):  "
            + "  ".join(f"a={a:g} {measured(a * noise):.2f}" for a in (0, 0.1, 0.5, 0.8, 0.9, 1, 1.1, 1.2))
        )
