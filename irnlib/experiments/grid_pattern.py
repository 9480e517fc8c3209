"""The reconstruction's fixed s × s pattern: how much of a model's error is one grid, the same on every image.

IRN upscales an 8-bit LR with a drawn latent ``z ~ N(0, 1)``. Averaged over draws, the
reconstruction's error is the model's *bias*; on smooth images it is what keeps the ×4 models
below Bicubic & Bicubic (issue 27's floor), and a third of it or more is one pattern of period ``s``:
the mean error at each of the ``s × s`` pixel positions of the Haar grid, less their mean, which
takes nearly the same values on a gradient, a colour wheel and a photograph
(``results/panel/grid_x4/README.md``). Per image this measures, in Y (0..255 levels, border
``s`` as the protocol):

- ``psnr_y``: the protocol's Y-PSNR of each draw's 8-bit reconstruction, averaged over the draws;
- ``psnr_y_mean_of_draws``: the Y-PSNR of the draws' mean (the bias alone, neither clipped nor rounded);
- ``psnr_y_pattern_removed``: ``psnr_y`` with the image's own ``s × s`` pattern (per colour)
  taken out of every draw before its rounding (a diagnostic of how much of the error it is, not
  a correction the kit applies);
- ``pattern_rms`` and ``pattern``: the pattern's luma (row-major, levels of 255) and its RMS.

About 10 s per image and model for four draws on one CPU thread at ×4.

    python -m irnlib.experiments.grid_pattern WEIGHTS [WEIGHTS ...] [--draws 4] [--datasets Set5] [--csv F] [--out F.md]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from irnlib.experiments.floor_hold import FLOOR_IMAGES
from irnlib.experiments.panel import panel_images
from irnlib.imaging.images import mod_crop, to_batch
from irnlib.imaging.metrics import psnr, rgb_to_y
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import downscale, upscale
from irnlib.protocol.evaluate import evaluation_pairs, write_csv
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import sha256_file, short_path, write_or_print
from irnlib.runtime.provenance import command_line
from irnlib.runtime.threads import apply_thread_policy

__all__ = ["COLUMNS", "grid_of", "measure_grid", "main"]

COLUMNS = ["image", "psnr_y", "psnr_y_mean_of_draws", "psnr_y_pattern_removed", "pattern_rms", "pattern"]


def grid_of(error: np.ndarray, scale: int) -> np.ndarray:
    """The ``(scale, scale)`` pattern of an error image: its mean at each pixel position of the
    ``scale × scale`` grid, less the mean of the positions.

    ``error`` ``(H, W)`` starts on the grid (row and column 0 are position 0); its sides are
    multiples of ``scale``.
    """
    h, w = error.shape
    if h % scale or w % scale:
        raise ValueError(f"grid_of: the error's sides {h}×{w} must be multiples of the scale {scale}")
    cells = error.reshape(h // scale, scale, w // scale, scale).mean(axis=(0, 2))  # (s, s)
    return cells - cells.mean()


def measure_grid(net, name: str, img: np.ndarray, draws: int = 4) -> dict:
    """One image's row of :data:`COLUMNS`: draws ``0 .. draws − 1`` of z (``torch.Generator`` seeds).

    The pattern is taken per colour from the draws' mean before clipping and rounding; with it
    removed, each draw is clipped and rounded to 8 bits again and measured as the protocol does.
    """
    s = net.scale
    hr = mod_crop(img, s)
    with torch.inference_mode():
        lr = downscale(net, to_batch(hr))  # the 8-bit LR, (1, 3, H/s, W/s)
        sr = [upscale(net, lr, generator=torch.Generator().manual_seed(d))[0] for d in range(draws)]
    sr = [x.permute(1, 2, 0).double().numpy() * 255 for x in sr]  # (H, W, 3), 0..255, not clipped
    crop = (slice(s, -s), slice(s, -s))  # the protocol's border; a multiple of s keeps the grid's origin
    bias = np.mean(sr, axis=0) - hr  # (H, W, 3)
    pattern = np.stack([grid_of(bias[crop][..., c], s) for c in range(3)], axis=-1)  # (s, s, 3)
    tiled = np.tile(pattern, (hr.shape[0] // s, hr.shape[1] // s, 1))
    pattern_y = rgb_to_y(pattern) - 16.0  # (s, s): the pattern's luma (a difference, no offset)
    bias_y = rgb_to_y(bias)[crop] - 16.0

    def to_uint8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(x), 0, 255).astype(np.uint8)

    return {
        "image": name,
        "psnr_y": float(np.mean([psnr(to_uint8(x), hr, border=s) for x in sr])),
        "psnr_y_mean_of_draws": float(10 * np.log10(255.0**2 / np.mean(bias_y**2))),
        "psnr_y_pattern_removed": float(np.mean([psnr(to_uint8(x - tiled), hr, border=s) for x in sr])),
        "pattern_rms": float(np.sqrt(np.mean(pattern_y**2))),
        "pattern": " ".join(f"{v:+.2f}" for v in pattern_y.ravel()),
    }


def _images(datasets, data_root, scale: int) -> dict[str, np.ndarray]:
    """The floor images (:data:`irnlib.experiments.floor_hold.FLOOR_IMAGES`), then the datasets' HR images."""
    panel = panel_images()
    images = {name: panel[name] for name in FLOOR_IMAGES.values()}
    for dataset in datasets:
        for pair in evaluation_pairs(dataset, scale, data_root):
            images[f"{dataset}/{pair.name}"] = pair.hr
    return images


def main(argv=None) -> int:
    """``python -m irnlib.experiments.grid_pattern``: a Markdown table, a row per model and image."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.grid_pattern", description=__doc__.split("\n")[0]
    )
    parser.add_argument("weights", nargs="+", help="IRN_x<s>.pth files")
    parser.add_argument("--draws", type=int, default=4, help="draws of z per image (default 4)")
    parser.add_argument("--datasets", nargs="*", default=[], help="test sets to add, e.g. Set5 (from $IRN_DATA)")
    parser.add_argument("--data-root", help="where the test sets are (default $IRN_DATA)")
    parser.add_argument("--csv", help="also write the numbers here")
    parser.add_argument("--out", help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, got {args.draws}")
    apply_thread_policy()
    rows, images = [], {}  # images: per scale, built once
    for path in args.weights:
        net = load_checkpoint(path).eval()
        model = {"model": short_path(path), "sha256": sha256_file(path)[:12]}
        if net.scale not in images:
            images[net.scale] = _images(args.datasets, args.data_root, net.scale)
        rows += [{**model, **measure_grid(net, name, img, args.draws)} for name, img in images[net.scale].items()]
    table = pd.DataFrame(rows, columns=["model", "sha256", *COLUMNS])
    if args.csv:
        write_csv(table, args.csv)
    cells = [
        [f"`{r['model']}`", r["sha256"], r["image"]]
        + [f"{r[c]:.2f}" for c in ("psnr_y", "psnr_y_mean_of_draws", "psnr_y_pattern_removed")]
        + [f"{r['pattern_rms']:.3f}"]
        for r in rows
    ]
    header = ["model", "sha256", "image", "psnr_y", "mean of draws", "pattern removed", "pattern rms"]
    lines = [
        "# The reconstruction's s × s pattern", "",
        f"Y-PSNR (dB) of each draw of z (mean of {args.draws}), of the draws' mean, and of each draw with the "
        "image's own s × s pattern taken out (a diagnostic); the pattern's RMS in levels of 255 (the values: "
        "the CSV's `pattern`). " + command_line("irnlib.experiments.grid_pattern", argv), "",
    ] + markdown_table(header, cells)  # fmt: skip
    write_or_print("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
