"""How far a change of at most one 8-bit level can push an IRN's latent and LR (issue 27).

An IRN whose couplings sit at their clamp multiplies a small change of its input by up to e per
InvBlock; on a texture the training never showed, that runaway is the green blob on
``embedded-test/coffee`` (``results/panel/gpu_x4/README.md``). The photographs the model trained on
do not start it, so their latents look healthy. This module looks for it directly: on crops of
test images it moves each crop by at most ``eps`` per value (projected gradient ascent on the
crop's largest ``|z|``) and reports how large ``|z|`` and how far out of [0, 1] the LR get.
A model trained with the kit's stress term (``lambda_stress``, :mod:`irnlib.training.objective`)
should keep both near their values on the crop itself.

    python -m irnlib.experiments.latent_sensitivity WEIGHTS [WEIGHTS ...] [--datasets Set14 BSD100]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import torch

from irnlib.data.folders import available_datasets, data_root
from irnlib.data.test_pairs import PairedTestSet
from irnlib.imaging.images import load_image, mod_crop
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import LR_RANGE, Z_LIMIT
from irnlib.model.network import IRN
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import sha256_file, short_path, write_or_print
from irnlib.runtime.provenance import command_line
from irnlib.runtime.threads import apply_thread_policy

__all__ = ["EPS", "sample_crops", "latent_sensitivity", "sensitivity_summary", "main"]

EPS = 1 / 255  # one 8-bit level: a change no one sees in the image
TOP = 16  # the ascent raises the mean of each crop's TOP largest |z|


def sample_crops(datasets, scale: int, count: int = 16, size: int = 96, seed: int = 0) -> np.ndarray:
    """``count`` random ``size``² crops of the test images of ``datasets`` (seeded).

    Returns
    -------
    uint8 (count, size, size, 3)
        One crop each from ``count`` images drawn without replacement (with, if there are fewer),
        mod-cropped as the test protocol does.
    """
    paths = [path for name in datasets for path in PairedTestSet(name, scale).paths]
    rng = np.random.default_rng(seed)
    crops = []
    for k in rng.choice(len(paths), count, replace=count > len(paths)):
        im = mod_crop(load_image(paths[k]), scale)
        if min(im.shape[:2]) < size:
            raise ValueError(f"{paths[k]}: {im.shape[1]}×{im.shape[0]} pixels, smaller than the crop ({size}); "
                             "pass a smaller --size")  # fmt: skip
        i, j = rng.integers(0, im.shape[0] - size + 1), rng.integers(0, im.shape[1] - size + 1)
        crops.append(im[i : i + size, j : j + size])
    return np.stack(crops)


def latent_sensitivity(net: IRN, crops: np.ndarray, eps: float = EPS, steps: int = 5) -> pd.DataFrame:
    """The largest ``|z|`` and the LR range each crop reaches when moved by at most ``eps`` per value.

    Parameters
    ----------
    net : IRN
    crops : uint8 (N, S, S, 3), ``S`` a multiple of ``net.scale``
    eps : float
        Bound on the change of each value, in the [0, 1] range (default one 8-bit level).
    steps : int
        Steps of the signed-gradient ascent (each ``eps / 2``, projected back into the bound).

    Returns
    -------
    DataFrame, one row per crop
        ``z_crop`` (largest ``|z|`` of the crop itself), ``z_moved``, ``lr_min_moved`` and
        ``lr_max_moved`` (of the moved crop, LR before quantisation).
    """
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255  # (N, 3, S, S)
    c = net.channels
    trainable = [p for p in net.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        delta = torch.zeros_like(x, requires_grad=True)
        for _ in range(steps):
            z = net((x + delta).clamp(0, 1))[:, c:].abs().flatten(1)  # (N, (3s² − 3)·h·w)
            (grad,) = torch.autograd.grad(z.topk(min(TOP, z.shape[1]), dim=1).values.mean(), delta)
            with torch.no_grad():
                delta += eps / 2 * grad.sign()
                delta.clamp_(-eps, eps)
        with torch.no_grad():
            y_crop, y_moved = net(x), net((x + delta).clamp(0, 1))
    finally:
        for p in trainable:
            p.requires_grad_(True)
    lr = y_moved[:, :c].flatten(1)
    return pd.DataFrame(
        {
            "z_crop": y_crop[:, c:].abs().flatten(1).amax(1).numpy(),
            "z_moved": y_moved[:, c:].abs().flatten(1).amax(1).numpy(),
            "lr_min_moved": lr.amin(1).numpy(),
            "lr_max_moved": lr.amax(1).numpy(),
        }
    )


def sensitivity_summary(frame: pd.DataFrame) -> dict:
    """Median and largest ``z_moved``, how many crops pass :data:`Z_LIMIT` or leave :data:`LR_RANGE`."""
    low, high = LR_RANGE
    return {
        "z_crop_max": float(frame["z_crop"].max()),
        "z_moved_median": float(frame["z_moved"].median()),
        "z_moved_max": float(frame["z_moved"].max()),
        "crops_z_over_limit": int((frame["z_moved"] > Z_LIMIT).sum()),
        "crops_lr_out_of_range": int(((frame["lr_min_moved"] < low) | (frame["lr_max_moved"] > high)).sum()),
        "crops": len(frame),
    }


def crop_datasets() -> list[str]:
    """The test sets the crops come from by default: Set14 and BSD100 where present; else embedded-test, said
    on stderr (its counts do not compare with theirs)."""
    present = [d for d in ("Set14", "BSD100") if d in available_datasets()]
    if present:
        return present
    print(
        f"latent_sensitivity: Set14 and BSD100 not found under {data_root()}; cropping embedded-test, whose "
        "counts do not compare with a Set14/BSD100 table (set IRN_DATA or pass --datasets)",
        file=sys.stderr,
    )
    return ["embedded-test"]


def main(argv=None) -> int:
    """``python -m irnlib.experiments.latent_sensitivity``: a Markdown table, one row per model."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.latent_sensitivity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("weights", nargs="+", help="IRN_x<s>.pth files of one scale")
    parser.add_argument("--datasets", nargs="+", help="test sets to crop (default: Set14 and BSD100 if present)")
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    apply_thread_policy()
    nets = [load_checkpoint(path).eval() for path in args.weights]
    scale = nets[0].scale
    if any(net.scale != scale for net in nets):
        parser.error(f"all weights must have one scale; got {[net.scale for net in nets]}")
    datasets = args.datasets or crop_datasets()
    crops = sample_crops(datasets, scale, args.crops, args.size)
    rows = []
    for path, net in zip(args.weights, nets, strict=True):
        s = sensitivity_summary(latent_sensitivity(net, crops, steps=args.steps))
        rows.append(
            [f"`{short_path(path)}`", sha256_file(path)[:12], f"{s['z_crop_max']:.2f}", f"{s['z_moved_median']:.1f}",
             f"{s['z_moved_max']:.1f}", f"{s['crops_z_over_limit']}/{s['crops']}",
             f"{s['crops_lr_out_of_range']}/{s['crops']}"]
        )  # fmt: skip
    header = ["model", "sha256", "|z| crop", "|z| moved, median", "|z| moved, max",
              f"moved |z| > {Z_LIMIT:g}", f"moved LR outside {list(LR_RANGE)}"]  # fmt: skip
    lines = [
        f"# Latent sensitivity, ×{scale}: crops moved by at most 1/255 per value", "",
        f"{args.crops} crops of {args.size}² from {', '.join(datasets)} (seed 0), {args.steps} steps of "
        f"projected signed-gradient ascent on each crop's {TOP} largest |z|. "
        + command_line("irnlib.experiments.latent_sensitivity", argv), "",
    ] + markdown_table(header, rows)  # fmt: skip
    text = "\n".join(lines) + "\n"
    write_or_print(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
