"""Why IRN destroys part of some images: measurements, one image and model at a time.

:func:`trace_forward` walks the network's operations (as :meth:`irnlib.model.network.IRN.run`
does) and records, after each Haar level and InvBlock, the range of the LR branch (the first
``C`` channels) and the largest ``|z|`` (the others). :func:`region_stats` compares saturated
and natural regions channel by channel, :func:`reconstruction_ablation` upscales with the true
or a drawn ``z`` and the LR before or after 8-bit quantisation (which of the two destroys the
image), :func:`latent_response` follows a drawn ``z``'s departure from the true one through the
inverse pass (which InvBlock lets it into the picture), :func:`gradient_check` measures what the
training objective's gradient does at clipped LR pixels (:mod:`irnlib.training.objective`), and
:func:`training_coverage` how often the training images hold such content. :func:`cause_report`
writes them all as Markdown.

Command line::

    python -m irnlib.experiments.panel_cause --image skimage/rocket --scale 4 [--checkpoint PATH] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import skimage.data
import torch

from irnlib.data.folders import list_images
from irnlib.data.synthetic import synthetic_patch
from irnlib.experiments.panel import block_errors, model_train_set, panel_images
from irnlib.imaging.images import load_image, mod_crop, to_batch, to_image
from irnlib.imaging.imresize import imresize
from irnlib.imaging.metrics import psnr
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import LR_RANGE, Z_LIMIT
from irnlib.model.network import IRN, InvBlock, quantize
from irnlib.protocol.evaluate import evaluation_pairs
from irnlib.protocol.weights import choose_weights
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import sha256_file, short_path, write_or_print
from irnlib.runtime.provenance import cpu_model, git_commit
from irnlib.runtime.threads import apply_thread_policy
from irnlib.training.objective import backward_loss, distribution_loss, forward_loss

__all__ = [
    "synthetic_mosaic",
    "SATURATED",
    "saturated_mask",
    "operation_names",
    "trace_forward",
    "region_stats",
    "reconstruction_ablation",
    "latent_response",
    "gradient_check",
    "content_stats",
    "training_coverage",
    "cause_report",
    "main",
]

SATURATED = (2, 253)  # a pixel is saturated when some channel is <= 2 or >= 253 (uint8)


def saturated_mask(img: np.ndarray, scale: int = 1) -> np.ndarray:
    """bool ``(H/scale, W/scale)``: the ``scale``×``scale`` blocks of uint8 ``img`` holding a saturated pixel."""
    sat = ((img <= SATURATED[0]) | (img >= SATURATED[1])).any(axis=2)
    h, w = sat.shape[0] // scale, sat.shape[1] // scale
    return sat[: h * scale, : w * scale].reshape(h, scale, w, scale).any(axis=(1, 3))


def operation_names(net: IRN) -> list[str]:
    """``net.operations`` in words: ``level 1: downsampling``, ``level 1: InvBlock 1``, ..."""
    names, level, block = [], 0, 0
    for op in net.operations:
        if isinstance(op, InvBlock):
            block += 1
            names.append(f"level {level}: InvBlock {block}")
        else:
            level, block = level + 1, 0
            names.append(f"level {level}: downsampling")
    return names


@torch.no_grad()
def coupling_gains(net: IRN, hr: np.ndarray) -> pd.DataFrame:
    """Each InvBlock's gain on the latent where it grows most, in the forward pass.

    An InvBlock multiplies its second part by ``exp(s)`` with ``s = 2·sigmoid(H(y1)) − 1`` in
    (−1, 1): at most e per block. Rows: ``z_in`` / ``z_out`` (largest ``|z|`` of the second part
    before and after the block), ``gain`` (their ratio; NaN where the latent is zero), ``s_there``
    (the largest ``s`` over channels at the pixel of ``z_out``) and ``s_at_clamp`` (how many ``s``
    values of the image exceed 0.99). A latent that explodes shows ``gain`` near e and ``s_there``
    near 1 in consecutive blocks.
    """
    x, rows = to_batch(hr), []
    for op, name in zip(net.operations, operation_names(net), strict=True):
        if isinstance(op, InvBlock):
            x1, x2 = x[:, : op.split], x[:, op.split :]
            s = op.log_scale(x1 + op.F(x2))
            y = op(x)
            z_out = y[0, op.split :].abs().amax(dim=0)
            i, j = np.unravel_index(int(torch.argmax(z_out)), tuple(z_out.shape))
            z_in, z_max = float(x2.abs().max()), float(z_out.max())
            rows.append(
                [
                    name,
                    z_in,
                    z_max,
                    z_max / z_in if z_in > 0 else float("nan"),
                    float(s[0, :, i, j].max()),
                    int((s > 0.99).sum()),
                ]
            )
            x = y
        else:
            x = op(x)
    return pd.DataFrame(rows, columns=["operation", "z_in", "z_out", "gain", "s_there", "s_at_clamp"])


@torch.no_grad()
def trace_forward(net: IRN, hr: np.ndarray) -> tuple[pd.DataFrame, torch.Tensor]:
    """The forward pass one operation at a time: LR-branch range and max ``|z|`` after each.

    Parameters
    ----------
    hr : uint8 (H, W, 3), sides multiples of ``net.scale``

    Returns
    -------
    DataFrame
        ``step, operation, lr_min, lr_max, z_max`` (``z`` = every channel after the first ``C``).
    tensor
        The forward output ``(1, C·s², H/s, W/s)``, equal to ``net(x)``.
    """
    x, rows, c = to_batch(hr), [], net.channels
    for step, (op, name) in enumerate(zip(net.operations, operation_names(net), strict=True)):
        x = op(x)
        rows.append([step, name, float(x[:, :c].min()), float(x[:, :c].max()), float(x[:, c:].abs().max())])
    return pd.DataFrame(rows, columns=["step", "operation", "lr_min", "lr_max", "z_max"]), x


def region_stats(net: IRN, hr: np.ndarray, y: torch.Tensor) -> pd.DataFrame:
    """Per channel, saturated against natural LR pixels: the LR before quantisation against MATLAB
    bicubic (0..1 units), how much of it is clipped, and ``|z|`` (a saturated LR pixel: its HR block
    holds a saturated pixel, :func:`saturated_mask`)."""
    s, c = net.scale, net.channels
    sat = saturated_mask(hr, s)
    lr = y[0, :c].numpy()  # (C, h, w)
    ref = imresize(hr, 1 / s).astype(np.float64).transpose(2, 0, 1) / 255.0
    z_abs = y[0, c:].abs().amax(dim=0).numpy()
    rows = []
    for region, mask in (("saturated", sat), ("natural", ~sat)):
        if not mask.any():
            continue
        for k, channel in enumerate("RGB"[:c]):
            v = lr[k][mask]
            rows.append(
                [region, channel, int(mask.sum()), float(v.min()), float(v.max()),
                 float(np.abs(v - ref[k][mask]).mean()), float(((v < 0) | (v > 1)).mean()),
                 float(z_abs[mask].mean()), float(z_abs[mask].max())]
            )  # fmt: skip
    columns = ["region", "channel", "lr_pixels", "lr_min", "lr_max", "mean_abs_vs_bicubic", "clipped_fraction"]
    return pd.DataFrame(rows, columns=columns + ["z_abs_mean", "z_abs_max"])


@torch.no_grad()
def reconstruction_ablation(net: IRN, hr: np.ndarray, y: torch.Tensor, seed: int = 0) -> pd.DataFrame:
    """Upscale four ways: the LR before or after 8-bit quantisation, with the true ``z`` or one drawn
    ``z ~ N(0, 1)`` (seed ``seed``; the protocol is "quantized, drawn"). Y-PSNR (border = scale) and
    the worst 32×32 block (mean |RGB error|, 0..255) of each."""
    c, s = net.channels, net.scale
    lr, z = y[:, :c], y[:, c:]
    drawn = net.sample_latent(lr, 1.0, torch.Generator().manual_seed(seed))
    rows = []
    for lr_name, lr_in in (("before quantisation", lr), ("quantized (8-bit)", quantize(lr))):
        for z_name, z_in in (("true z", z), ("drawn z", drawn)):
            sr = to_image(net.inverse(torch.cat((lr_in, z_in), 1))[:, :c])
            rows.append([lr_name, z_name, psnr(sr, hr, border=s), float(block_errors(sr, hr).max())])
    return pd.DataFrame(rows, columns=["lr", "z", "psnr_y", "worst_block"])


def _rms(t: torch.Tensor) -> float:
    return float(t.pow(2).mean().sqrt()) if t.numel() else 0.0


@torch.no_grad()
def latent_response(net: IRN, hr: np.ndarray, y: torch.Tensor, seed: int = 0) -> pd.DataFrame:
    """The inverse pass from the 8-bit LR twice, with the true ``z`` and with one drawn ``z ~ N(0, 1)``
    (seed ``seed``), one operation at a time: how far apart the two are after each.

    The upscaled image differs only through the draw, so this shows which InvBlock carries the
    drawn latent into the LR branch and, at the last step, into the picture.

    Returns
    -------
    DataFrame
        ``step, operation, lr_branch_rms, z_branch_rms, z_gain, s_at_clamp``: the RMS difference
        (0..255 units) of the first ``C`` channels and of the others after the operation, in the
        order the inverse runs them; ``z_gain`` is the InvBlock's mean ``exp(-s)``, the factor its
        inverse multiplies the latent branch by, and ``s_at_clamp`` the fraction of its ``s`` within
        0.01 of the clamp (``|s| > 0.99``: the sigmoid saturated, the scale at its bound e^±1), both
        on the drawn pass (NaN for a Haar level). After the last step (level 1's Haar inverse)
        ``lr_branch_rms`` is the RGB image's.
    """
    c = net.channels
    lr = quantize(y[:, :c])
    true_z = torch.cat((lr, y[:, c:]), 1)
    drawn = torch.cat((lr, net.sample_latent(lr, 1.0, torch.Generator().manual_seed(seed))), 1)
    names = operation_names(net)
    rows = []
    for step, op in reversed(list(enumerate(net.operations))):
        gain = at_clamp = float("nan")
        if isinstance(op, InvBlock):
            log_scale = op.log_scale(drawn[:, : op.split])  # s in (-1, 1)
            gain, at_clamp = float(torch.exp(-log_scale).mean()), float((log_scale.abs() > 0.99).float().mean())
        true_z, drawn = op.inverse(true_z), op.inverse(drawn)
        diff = 255.0 * (drawn - true_z)
        rows.append([step, names[step], _rms(diff[:, :c]), _rms(diff[:, c:]), gain, at_clamp])
    columns = ["step", "operation", "lr_branch_rms", "z_branch_rms", "z_gain", "s_at_clamp"]
    return pd.DataFrame(rows, columns=columns)


def gradient_check(net: IRN, hr: np.ndarray, lambda_forw: float = 16.0) -> dict:
    """What the training objective's gradient does at LR pixels the quantiser clips.

    Runs :mod:`irnlib.training.objective`'s terms on ``hr`` (one draw of ``z'``, seed 0) and takes
    the gradient of each with respect to the LR before quantisation. At the clipped pixels (LR outside
    [0, 1]) it reports how often ``−grad`` points back into [0, 1] or further out, for L_forw and L_back
    separately; and, on a single clipped value, L_back's autograd derivative beside its finite difference.
    """
    c = net.channels
    x = to_batch(hr)
    y = net(x)
    lr = y[:, :c].detach().requires_grad_(True)
    z = y[:, c:].detach()
    ref = to_batch(imresize(hr, 1 / net.scale))
    z_prime = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    x_hat = net.inverse(torch.cat((quantize(lr), z_prime), 1))[:, :c]
    terms = {"l_forw": lambda_forw * forward_loss(lr, ref), "l_back": backward_loss(x_hat, x)}
    out = {"clipped_pixels": int(((lr < 0) | (lr > 1)).sum()), "lr_values": int(lr.numel())}
    outward = torch.where(lr > 1, 1.0, torch.where(lr < 0, -1.0, 0.0))  # the direction away from [0, 1]
    for name, term in terms.items():
        (grad,) = torch.autograd.grad(term, lr, retain_graph=True)
        step = -grad * outward  # > 0: gradient descent moves the value further out of [0, 1]
        clipped = outward != 0
        out[f"{name}_outward_fraction"] = float((step[clipped] > 0).float().mean()) if clipped.any() else float("nan")
        out[f"{name}_mean_abs_grad_clipped"] = float(grad[clipped].abs().mean()) if clipped.any() else float("nan")
    out["l_distr_of_z"] = float(distribution_loss(z))
    # One value: d/dv of a loss through quantize at v = 1.5 (clipped): autograd against finite difference.
    v = torch.tensor([1.5], requires_grad=True)
    (auto,) = torch.autograd.grad((quantize(v) - 0.2).pow(2).sum(), v)
    with torch.no_grad():
        fd = float(((quantize(v + 0.01) - 0.2).pow(2) - (quantize(v - 0.01) - 0.2).pow(2)).sum() / 0.02)
    out.update(ste_autograd_at_1_5=float(auto), ste_finite_difference_at_1_5=fd)
    return out


def content_stats(img: np.ndarray) -> dict:
    """Fractions of an image's pixels that are saturated (:data:`SATURATED`), strongly coloured
    (max − min channel ≥ 200) and lie in flat 32×32 blocks (every channel's std < 2)."""
    f = img.astype(np.float64)
    h, w = (img.shape[0] // 32) * 32, (img.shape[1] // 32) * 32
    blocks = f[:h, :w].reshape(h // 32, 32, w // 32, 32, 3).std(axis=(1, 3))
    return {
        "saturated": float(saturated_mask(img).mean()),
        "strong_colour": float(((f.max(axis=2) - f.min(axis=2)) >= 200).mean()),
        "flat_blocks": float((blocks < 2).all(axis=2).mean()) if blocks.size else 0.0,
    }


def training_coverage(datasets=("T91", "BSD200"), root=None, extra: dict | None = None) -> pd.DataFrame:
    """:func:`content_stats` averaged over every image of the training sets (pixel-weighted), and for
    the ``extra`` images (name -> uint8 image) to compare; a missing dataset is skipped."""
    rows = []
    for name in datasets:
        try:
            files = list_images(name, root)
        except (FileNotFoundError, ValueError):
            continue
        stats = [(content_stats(img), img.shape[0] * img.shape[1]) for img in map(load_image, files)]
        total = sum(n for _, n in stats)
        rows.append([name, len(files)] + [sum(st[k] * n for st, n in stats) / total for k in stats[0][0]])
    for name, img in (extra or {}).items():
        rows.append([name, 1, *content_stats(img).values()])
    return pd.DataFrame(rows, columns=["images", "count", "saturated", "strong_colour", "flat_blocks"])


def synthetic_mosaic(count: int = 256, patch: int = 96, seed: int = 0) -> np.ndarray:
    """``count`` synthetic training patches (:func:`irnlib.data.synthetic.synthetic_patch`, the
    ``"highlights"`` kind on a crop of skimage's camera) tiled 16 to a row: what the quick recipe
    adds to a quarter of its samples, for :func:`training_coverage`."""
    photo = np.repeat(skimage.data.camera()[:patch, :patch, None], 3, axis=2)
    tiles = [synthetic_patch(np.random.default_rng((seed, k, 2)), patch, photo) for k in range(count)]
    rows = [np.concatenate(tiles[i : i + 16], axis=1) for i in range(0, count - count % 16, 16)]
    return np.concatenate(rows, axis=0)


def _table(frame: pd.DataFrame, digits: int = 3) -> list[str]:
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else v  # noqa: E731
    return markdown_table(list(frame.columns), [[fmt(v) for v in row] for row in frame.itertuples(index=False)])


def _crop_around(img: np.ndarray, y: torch.Tensor, net: IRN, side: int = 128) -> np.ndarray:
    """A ``side``-pixel HR crop centred on the LR pixel with the largest ``|z|`` (for the autograd check)."""
    z_abs = y[0, net.channels :].abs().amax(dim=0)
    i, j = np.unravel_index(int(torch.argmax(z_abs)), tuple(z_abs.shape))
    s = net.scale
    top = int(np.clip(i * s - side // 2, 0, img.shape[0] - side)) // s * s
    left = int(np.clip(j * s - side // 2, 0, img.shape[1] - side)) // s * s
    return img[top : top + side, left : left + side]


def cause_report(net: IRN, name: str, img: np.ndarray, checkpoint, data_root=None) -> str:
    """Markdown: :func:`trace_forward`, :func:`region_stats`, :func:`reconstruction_ablation` on the
    whole (panel) image, :func:`gradient_check` on a 128-pixel crop around its largest ``|z|``, and
    :func:`training_coverage` of T91 and BSD200 beside this image."""
    hr = mod_crop(img, net.scale)
    trace, y = trace_forward(net, hr)
    lines = [f"## {name}, ×{net.scale} ({hr.shape[1]}×{hr.shape[0]}), {short_path(checkpoint)}", ""]
    lines += [f"sha256 {sha256_file(checkpoint)}; trained on {model_train_set(checkpoint)}.", ""]
    lines += ["### The forward pass, operation by operation", ""] + _table(trace) + [""]
    lines += ["### The couplings' gain on the latent (forward; at most e = 2.718 per InvBlock)", ""]
    lines += _table(coupling_gains(net, hr)) + [""]
    lines += [f"### Saturated (some channel ≤ {SATURATED[0]} or ≥ {SATURATED[1]}) against natural LR pixels", ""]
    lines += _table(region_stats(net, hr, y)) + [""]
    lines += ["### Upscaling with the true or a drawn z, the LR before or after quantisation", ""]
    lines += _table(reconstruction_ablation(net, hr, y), 2) + [""]
    lines += ["### A drawn z against the true z through the inverse pass (RMS difference, 0..255)", ""]
    lines += _table(latent_response(net, hr, y), 3) + [""]
    grads = gradient_check(net, _crop_around(hr, y, net))
    lines += ["### The training objective's gradient at clipped LR values (128-pixel crop around max |z|)", ""]
    lines += markdown_table(["quantity", "value"], [[k, f"{v:.4g}"] for k, v in grads.items()]) + [""]
    extra = {name: hr, "synthetic patches (quick recipe, 25 % of samples)": synthetic_mosaic()}
    coverage = training_coverage(root=data_root, extra=extra)
    lines += ["### How often the training images hold such content", ""] + _table(coverage, 4) + [""]
    return "\n".join(lines)


def embedded_or_panel_image(name: str, train_set: str | None, scale: int) -> np.ndarray:
    """A panel image by its panel name, or an embedded test image as ``embedded-test/<name>`` (the
    panel leaves those out; mod-cropped as the test protocol does)."""
    dataset, _, image = name.partition("/")
    if dataset == "embedded-test":
        return {pair.name: pair.hr for pair in evaluation_pairs(dataset, scale)}[image]
    return panel_images(train_set, scale=scale)[name]


def main(argv=None) -> int:
    """``python -m irnlib.experiments.panel_cause``: :func:`cause_report` for panel images."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.panel_cause", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--image", nargs="+", required=True, help="panel image names, e.g. skimage/rocket, or embedded-test/coffee"
    )
    parser.add_argument("--scale", type=int, nargs="+", required=True, help="one scale per image (or one for all)")
    parser.add_argument(
        "--checkpoint", nargs="*", default=(), help="weights per image (or one for all; default: choose_weights)"
    )
    parser.add_argument("--out", help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    apply_thread_policy()  # IRN_THREADS / OMP_NUM_THREADS, or sized for the machine's load
    scales = args.scale * len(args.image) if len(args.scale) == 1 else args.scale
    checkpoints = args.checkpoint * len(args.image) if len(args.checkpoint) == 1 else args.checkpoint
    for option, given in (("--scale", scales), ("--checkpoint", checkpoints)):
        if given and len(given) != len(args.image):
            parser.error(
                f"{option}: give one value for all images or one per image ({len(args.image)}), not {len(given)}"
            )
    torch.manual_seed(0)
    parts = [
        "# Why IRN destroys part of some images: measurements", "",
        f"Command: `python -m irnlib.experiments.panel_cause {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"; commit {git_commit()}; date {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}; CPU {cpu_model()}; "
        f"{torch.get_num_threads()} torch threads. Thresholds: LR range {LR_RANGE}, |z| ≤ {Z_LIMIT:g}.", "",
    ]  # fmt: skip
    for k, (name, scale) in enumerate(zip(args.image, scales)):
        checkpoint = Path(checkpoints[k]) if checkpoints else choose_weights("rescale", scale)
        net = load_checkpoint(checkpoint).eval()
        img = embedded_or_panel_image(name, model_train_set(checkpoint), scale)
        parts.append(cause_report(net, name, img, checkpoint))
    text = "\n".join(parts)
    write_or_print(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
