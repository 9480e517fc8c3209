"""The ×4 trade-off of issue 27 in a few numbers per model: the smooth-image floor and the saturated hold.

Every CPU recipe measured for the ×4 reference models trades one of these against the other
(``results/panel/quiet_x4/README.md`` §8–§10), so a training run is judged on both, quickly:

- **floor**: IRN − Bicubic & Bicubic Y-PSNR (dB) on the generalisation panel's two smooth,
  saturated images, ``skimage/colorwheel`` and ``synthetic/gradients``
  (:func:`irnlib.experiments.panel.panel_images`), the mean of ``draws`` draws of z (seeds
  ``0 .. draws − 1``). The issue's goal is no image more than 0.5 dB below bicubic. Beside it the
  LR's maximum before quantisation on each (the panel flags one above 1.1): the ×4 run that lifted
  the floor most pushed the colour wheel's blue LR past it (§11).
- **hold**: the LR's minimum before quantisation on scikit-image's ``coffee`` with its chroma
  scaled ×1, ×2, ×3 (:func:`irnlib.experiments.saturation_stress.saturate`); the panel flags an
  LR below −0.1.

Both come from the panel's own protocol (:func:`irnlib.experiments.panel.measure_image`).
About a minute per ×4 model on one CPU thread.

    python -m irnlib.experiments.floor_hold WEIGHTS [WEIGHTS ...] [--draws 3] [--csv FILE] [--out FILE.md]
"""

from __future__ import annotations

import argparse

import pandas as pd
import skimage.data

from irnlib.experiments.panel import measure_image, panel_images
from irnlib.experiments.saturation_stress import GAINS, saturate
from irnlib.model.checkpoint import load_checkpoint
from irnlib.protocol.evaluate import write_csv
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import sha256_file, short_path, write_or_print
from irnlib.runtime.provenance import command_line
from irnlib.runtime.threads import apply_thread_policy

__all__ = ["FLOOR_IMAGES", "HOLD_PHOTOGRAPH", "floor_and_hold", "main"]

FLOOR_IMAGES = {"colorwheel": "skimage/colorwheel", "gradients": "synthetic/gradients"}  # column name -> panel image
HOLD_PHOTOGRAPH = "coffee"  # skimage.data's photograph whose saturated versions the ×4 models' LR left [0, 1] on


def floor_and_hold(net, draws: int = 3, gains=GAINS) -> dict[str, float]:
    """The floor and the hold of one model.

    Parameters
    ----------
    net : IRN
        In eval mode.
    draws : int
        Draws of z per floor image (seeds ``0 .. draws − 1``).
    gains : sequence of float
        Chroma gains of :data:`HOLD_PHOTOGRAPH`.

    Returns
    -------
    dict
        ``{name}_gap_db`` per :data:`FLOOR_IMAGES` (IRN − bicubic Y-PSNR, dB, mean over the draws),
        then ``{name}_lr_max`` per floor image (the LR's maximum before quantisation, which no draw
        changes), and ``coffee_lr_min_x{gain:g}`` per gain (the LR's minimum before quantisation, in [0, 1] units).
    """
    if draws < 1:
        raise ValueError(f"floor_and_hold: draws must be at least 1, got {draws}")
    images = panel_images()
    gaps, lr_max = {}, {}
    for column, name in FLOOR_IMAGES.items():
        measured = [measure_image(net, name, images[name], seed=seed)[0] for seed in range(draws)]
        gaps[f"{column}_gap_db"] = sum(m["psnr_gap_db"] for m in measured) / draws
        lr_max[f"{column}_lr_max"] = measured[0]["lr_max"]
    row = {**gaps, **lr_max}
    photograph = getattr(skimage.data, HOLD_PHOTOGRAPH)()
    for gain in gains:
        measured = measure_image(net, f"{HOLD_PHOTOGRAPH} ×{gain:g}", saturate(photograph, gain))[0]
        row[f"{HOLD_PHOTOGRAPH}_lr_min_x{gain:g}"] = measured["lr_min"]
    return row


def main(argv=None) -> int:
    """``python -m irnlib.experiments.floor_hold``: a Markdown table, a row per model."""
    parser = argparse.ArgumentParser(prog="python -m irnlib.experiments.floor_hold", description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="+", help="IRN_x<s>.pth files")
    parser.add_argument("--draws", type=int, default=3, help="draws of z per floor image (default 3)")
    parser.add_argument("--csv", help="also write the numbers here")
    parser.add_argument("--out", help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    apply_thread_policy()
    rows = []
    for path in args.weights:
        measured = floor_and_hold(load_checkpoint(path).eval(), args.draws)
        rows.append({"model": short_path(path), "sha256": sha256_file(path)[:12], **measured})
    table = pd.DataFrame(rows)
    if args.csv:
        write_csv(table, args.csv)
    header = ["model", "sha256"] + [c for c in table.columns if c not in ("model", "sha256")]
    cells = [
        [f"`{r['model']}`", r["sha256"]] + [f"{r[c]:+.2f}" if c.endswith("_db") else f"{r[c]:.3f}" for c in header[2:]]
        for r in rows
    ]
    plural = "s" if args.draws > 1 else ""
    lines = [
        "# Floor and hold: the smooth images against bicubic, the saturated photograph's LR", "",
        f"Floor: IRN − Bicubic & Bicubic Y-PSNR (dB, mean of {args.draws} draw{plural} of z); hold: the LR's "
        f"minimum before quantisation on `{HOLD_PHOTOGRAPH}` at each chroma gain. "
        + command_line("irnlib.experiments.floor_hold", argv), "",
    ] + markdown_table(header, cells)  # fmt: skip
    write_or_print("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
