"""The generalisation panel: any IRN model on images unlike its training data, all offline.

The panel (:func:`panel_images`) holds scikit-image's photographs that the model was not
trained on and that are not the kit's ``embedded-test`` set, its grey images as RGB, rendered
text and a screenshot-like page, saturated highlights on a photograph, flat colour fields, the
colour wheel and gradients (and, optionally, test sets under ``$IRN_DATA``); photographs whole up
to :data:`MAX_SIDE` pixels a side (rocket, 427×640, where the issue saw the worst failure). Each goes
through the paper's protocol (:func:`irnlib.protocol.evaluate.round_trip`, one seeded draw of
``z``, Y-PSNR with border = scale) beside "Bicubic & Bicubic", and :func:`measure_image` adds
what a mean PSNR hides: the worst 32×32 block of each reconstruction, the range of IRN's LR
before quantisation and the largest ``|z|`` of the same forward pass.

Flags (one row per image; thresholds below): ``local_failure`` (IRN's worst block above
20/255 and above twice bicubic's), ``below_bicubic`` (IRN more than 0.5 dB below bicubic),
``lr_out_of_range`` (LR before quantisation outside [−0.1, 1.1]) and ``latent_far``
(``|z| > 8``), the last two as :class:`irnlib.model.inference.DownscaleHealth` measures them.

Command line::

    python -m irnlib.experiments.panel --scale 4 [--checkpoint PATH] [--out DIR] [--max-side 640] [--datasets Set14 ...]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import skimage.data
import torch
from matplotlib.figure import Figure  # no pyplot: the panel only writes files
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from irnlib.data.registry import EMBEDDED
from irnlib.data.synthetic import hue_rgb
from irnlib.data.test_pairs import TestPair
from irnlib.imaging.images import center_crop, mod_crop, to_batch, to_image
from irnlib.imaging.imresize import imresize
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import LR_RANGE, TILE, Z_LIMIT, downscale_health, forward
from irnlib.model.network import IRN, quantize
from irnlib.protocol import evaluate
from irnlib.protocol.weights import choose_weights
from irnlib.runtime.device import net_device
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import atomic_write, results_root, save_figure, sha256_file, short_path
from irnlib.runtime.provenance import cpu_model, git_commit
from irnlib.runtime.threads import apply_thread_policy, tune_cpu_allocator

__all__ = [
    "BLOCK",
    "LOCAL_ABS",
    "LOCAL_RATIO",
    "BELOW_DB",
    "MAX_SIDE",
    "PANEL_COLUMNS",
    "model_train_set",
    "excluded_photographs",
    "panel_images",
    "block_errors",
    "worst_block",
    "panel_flags",
    "measure_image",
    "run_panel",
    "goals_table",
    "panel_summary",
    "worst_crops_figure",
    "write_panel",
    "panel",
    "main",
]

BLOCK = 32  # side of the blocks of the worst-block error, HR pixels
LOCAL_ABS = 20.0  # a local failure: IRN's worst block mean |error| above this (0..255) ...
LOCAL_RATIO = 2.0  # ... and above this many times bicubic's worst block
BELOW_DB = 0.5  # below bicubic: IRN's Y-PSNR more than this many dB under Bicubic & Bicubic's
MAX_SIDE = 640  # photographs: centre-cropped to at most this side (skimage's rocket, 427×640, stays whole)

PANEL_COLUMNS = [
    "image",  # "<kind>/<name>": kind in skimage (colour photograph), grey (as RGB), synthetic, or a dataset
    "scale",
    "height",
    "width",
    "psnr_y_irn",  # dB, the protocol (one draw of z), border = scale
    "psnr_y_bicubic",  # dB, Bicubic & Bicubic
    "psnr_gap_db",  # psnr_y_irn - psnr_y_bicubic
    "worst_block_irn",  # max over 32x32 blocks of the mean |RGB error|, 0..255
    "worst_block_bicubic",
    "worst_block_top",  # IRN's worst block, HR pixels
    "worst_block_left",
    "lr_min",  # IRN's LR before quantisation (first 3 channels of the forward pass)
    "lr_max",
    "z_max",  # largest |z| of the same forward pass
    "local_failure",
    "below_bicubic",
    "lr_out_of_range",
    "latent_far",
    "seed",
]

# scikit-image's colour photographs: panel name -> (file in skimage/data/, loader). The file names
# are those of irnlib.data.registry.EMBEDDED, so that a model's training and test images can be left out.
_PHOTOS = {
    "astronaut": ("astronaut.png", skimage.data.astronaut),
    "chelsea": ("chelsea.png", skimage.data.chelsea),
    "coffee": ("coffee.png", skimage.data.coffee),
    "rocket": ("rocket.jpg", skimage.data.rocket),
    "hubble_deep_field": ("hubble_deep_field.jpg", skimage.data.hubble_deep_field),
    "immunohistochemistry": ("ihc.png", skimage.data.immunohistochemistry),
    "retina": ("retina.jpg", skimage.data.retina),
    "motorcycle_left": ("motorcycle_left.png", lambda: skimage.data.stereo_motorcycle()[0]),
    "logo": ("logo.png", skimage.data.logo),
    "colorwheel": ("color.png", skimage.data.colorwheel),
}
_GREY = ("camera", "moon", "coins", "page", "text", "grass", "brick", "clock")


def model_train_set(checkpoint) -> str | None:
    """The ``train_set`` of the run that made ``checkpoint`` (its ``config.json`` or ``card.json``), else None."""
    folder = Path(checkpoint).parent
    for name in ("config.json", "card.json"):
        try:
            record = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        train_set = record.get("train_set") or record.get("config", {}).get("train_set")
        if train_set:
            return str(train_set)
    return None


def excluded_photographs(train_set: str | None) -> set[str]:
    """Files of scikit-image's photographs the panel leaves out: always ``embedded-test``, and
    ``embedded-train`` when ``train_set`` names it (or is unknown, ``None``: to be safe)."""
    files = set(EMBEDDED["embedded-test"])
    if train_set is None or "embedded" in train_set:
        files |= set(EMBEDDED["embedded-train"])
    return files


def _rgb(img: np.ndarray) -> np.ndarray:
    """Any skimage image -> uint8 (H, W, 3): grey repeated, alpha composited on white."""
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        alpha = img[..., 3:4].astype(np.float64) / 255.0
        img = np.round(img[..., :3] * alpha + 255.0 * (1 - alpha))
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def _rendered_text(height: int = 192, width: int = 256) -> np.ndarray:
    """Black text of PIL's default font on white, several sizes of line spacing."""
    pil = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(pil), ImageFont.load_default()
    words = "Invertible Image Rescaling ECCV 2020 0123456789 the quick brown fox jumps over the lazy dog".split()
    y, i = 4, 0
    while y < height - 12:
        draw.text((4, y), " ".join(words[(i + k) % len(words)] for k in range(6)), fill="black", font=font)
        y, i = y + 12 + (i % 3) * 2, i + 2
    return np.asarray(pil)


def _screenshot(height: int = 192, width: int = 256) -> np.ndarray:
    """A screenshot-like page: title bar, buttons in saturated colours, text, a text box."""
    pil = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(pil), ImageFont.load_default()
    draw.rectangle((0, 0, width, 22), fill=(0, 90, 200))
    draw.text((6, 5), "irn explorer - rocket.png", fill="white", font=font)
    for k, (colour, label) in enumerate((((220, 0, 0), "Delete"), ((0, 160, 0), "OK"), ((255, 200, 0), "Help"))):
        draw.rectangle((8 + 62 * k, 34, 60 + 62 * k, 54), fill=colour, outline="black")
        draw.text((16 + 62 * k, 39), label, fill="white" if k < 2 else "black", font=font)
    draw.rectangle((8, 66, width - 8, 94), fill=(240, 240, 240), outline=(120, 120, 120))
    draw.text((14, 74), "Type a file name here", fill=(80, 80, 80), font=font)
    for row in range(6):
        draw.text((8, 104 + 14 * row), f"{row + 1}. line of body text, item {row * 7}", fill="black", font=font)
    draw.line((0, height - 12, width, height - 12), fill=(0, 0, 255), width=2)
    return np.asarray(pil)


def _highlights(base: np.ndarray) -> np.ndarray:
    """Saturated highlights on a photograph: soft discs of pure white and pure colours."""
    h, w = base.shape[:2]
    img = base.astype(np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    colours = [(255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]
    for k, colour in enumerate(colours):
        cy, cx = h * (0.25 + 0.5 * (k // 3)), w * (0.2 + 0.3 * (k % 3))
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (min(h, w) / 10) ** 2
        weight = np.clip(1.5 - r2, 0, 1)[..., None]  # flat (saturated) core, soft rim
        img = img * (1 - weight) + np.array(colour, dtype=np.float64) * weight
    return np.round(img).astype(np.uint8)


def _flat_colours(side: int = 64) -> np.ndarray:
    """Flat fields of pure R, G, B, C, M, Y, white and black, 2 rows of 4 patches."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0), (255,) * 3, (0,) * 3]
    patches = [np.full((side, side, 3), c, dtype=np.uint8) for c in colours]
    return np.concatenate([np.concatenate(patches[:4], axis=1), np.concatenate(patches[4:], axis=1)], axis=0)


def _gradients(side: int = 256) -> np.ndarray:
    """Hue across (pure hues, full saturation), brightness down: a smooth, fully saturated field."""
    rgb = hue_rgb(np.linspace(0, 6, side, endpoint=False)[None, :, None])  # (1, side, 3)
    value = np.linspace(1, 0, side)[:, None, None]
    return np.round(rgb * value * 255).astype(np.uint8)


def _synthetic() -> dict[str, np.ndarray]:
    base = center_crop(_rgb(skimage.data.camera()), 256)
    tinted = np.round(base * np.array([1.0, 0.85, 0.65])).astype(np.uint8)  # a warm photograph
    return {
        "synthetic/text": _rendered_text(),
        "synthetic/screenshot": _screenshot(),
        "synthetic/highlights": _highlights(tinted),
        "synthetic/flat_colours": _flat_colours(),
        "synthetic/gradients": _gradients(),
    }


def panel_images(
    train_set: str | None = None,
    *,
    max_side: int = MAX_SIDE,
    small_side: int = 256,
    datasets=(),
    data_root=None,
    scale: int = 4,
) -> dict[str, np.ndarray]:
    """The panel's images, deterministic: name ``"<kind>/<name>"`` -> uint8 ``(H, W, 3)``.

    Parameters
    ----------
    train_set : str or None
        The model's training set (:func:`model_train_set`); decides which scikit-image
        photographs are left out (:func:`excluded_photographs`).
    max_side : int
        Colour photographs and dataset images are centre-cropped to at most this side (the default
        640 keeps rocket, 427×640, logo, colorwheel, ... whole, and the centre of larger ones such as retina).
    small_side : int
        Grey images are centre-cropped to at most this side (the synthetic ones are 256 wide).
    datasets : sequence of str
        Test sets to add (e.g. ``("Set14", "BSD100")``), read from ``data_root``/``$IRN_DATA``.
    scale : int
        Only to read the datasets' pairs (:func:`irnlib.protocol.evaluate.evaluation_pairs`).
    """
    excluded = excluded_photographs(train_set)
    images = {
        f"skimage/{name}": center_crop(_rgb(load()), max_side)
        for name, (file, load) in _PHOTOS.items()
        if file not in excluded
    }
    images.update({f"grey/{name}": center_crop(_rgb(getattr(skimage.data, name)()), small_side) for name in _GREY})
    images.update(_synthetic())
    for dataset in datasets:
        for pair in evaluate.evaluation_pairs(dataset, scale, data_root, crop=max_side):
            images[f"{dataset}/{pair.name}"] = pair.hr
    return images


def block_errors(a: np.ndarray, b: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Mean absolute RGB error (0..255) of each non-overlapping ``block``×``block`` block.

    Parameters
    ----------
    a, b : uint8 (H, W, 3)
        Blocks that do not fit whole at the bottom/right are left out (an image smaller than
        a block is one block).

    Returns
    -------
    float64 (H // block, W // block)
    """
    err = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean(axis=2)
    h, w = err.shape
    bh, bw = min(block, h), min(block, w)
    err = err[: h // bh * bh, : w // bw * bw]
    return err.reshape(h // bh, bh, w // bw, bw).mean(axis=(1, 3))


def worst_block(a: np.ndarray, b: np.ndarray, block: int = BLOCK) -> tuple[float, int, int]:
    """The largest :func:`block_errors` value and its block's ``(top, left)`` in pixels."""
    grid = block_errors(a, b, block)
    i, j = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return float(grid[i, j]), int(i) * min(block, a.shape[0]), int(j) * min(block, a.shape[1])


def panel_flags(psnr_irn, psnr_bicubic, worst_irn, worst_bicubic, lr_min, lr_max, z_max) -> dict[str, bool]:
    """The four flags of one image (thresholds :data:`LOCAL_ABS`, :data:`LOCAL_RATIO`, :data:`BELOW_DB`,
    :data:`irnlib.model.inference.LR_RANGE`, :data:`irnlib.model.inference.Z_LIMIT`); errors in 0..255, dB."""
    return {
        "local_failure": bool(worst_irn > LOCAL_ABS and worst_irn > LOCAL_RATIO * worst_bicubic),
        "below_bicubic": bool(psnr_irn < psnr_bicubic - BELOW_DB),
        "lr_out_of_range": bool(lr_min < LR_RANGE[0] or lr_max > LR_RANGE[1]),
        "latent_far": bool(z_max > Z_LIMIT),
    }


def measure_image(
    net: IRN, name: str, img: np.ndarray, *, seed: int = 0, tile: int | None = TILE
) -> tuple[dict, dict[str, np.ndarray]]:
    """One panel image through the protocol, IRN beside Bicubic & Bicubic.

    The forward pass runs once: its output gives the LR before quantisation, ``|z|`` and (quantized)
    the 8-bit LR that :func:`irnlib.protocol.evaluate.round_trip` upscales with one draw of ``z``
    (``torch.Generator().manual_seed(seed)``).

    Returns
    -------
    row : dict
        The columns :data:`PANEL_COLUMNS`.
    images : dict
        uint8 ``hr``, ``irn`` and ``bicubic`` reconstructions (mod-cropped to the scale), for figures.
    """
    s = net.scale
    hr = mod_crop(img, s)
    pair = TestPair(name, hr, imresize(hr, 1 / s))
    with torch.inference_mode():
        y = forward(net, to_batch(hr).to(net_device(net)), tile=tile)
        lr = np.ascontiguousarray(to_image(quantize(y[:, : net.channels])))
        health = downscale_health(net, y)
    trip = evaluate.round_trip(net, pair, [torch.Generator().manual_seed(seed)], tile=tile, lr=lr)
    irn, bic = trip.sr[0], evaluate.bicubic_rescale(pair, s)
    psnr_irn, psnr_bic = trip.sr_metrics[0]["psnr_y"], evaluate.sr_metrics(bic, hr, s)["psnr_y"]
    worst_irn, top, left = worst_block(irn, hr)
    worst_bic = worst_block(bic, hr)[0]
    row = dict(
        image=name, scale=s, height=hr.shape[0], width=hr.shape[1], psnr_y_irn=psnr_irn, psnr_y_bicubic=psnr_bic,
        psnr_gap_db=psnr_irn - psnr_bic, worst_block_irn=worst_irn, worst_block_bicubic=worst_bic,
        worst_block_top=top, worst_block_left=left, lr_min=health.lr_min, lr_max=health.lr_max,
        z_max=health.z_max, seed=seed,
        **panel_flags(psnr_irn, psnr_bic, worst_irn, worst_bic, health.lr_min, health.lr_max, health.z_max),
    )  # fmt: skip
    return {k: row[k] for k in PANEL_COLUMNS}, {"hr": hr, "irn": irn, "bicubic": bic}


def run_panel(
    net: IRN, images: dict[str, np.ndarray], *, seed: int = 0, tile: int | None = TILE, progress: bool = True
) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """:func:`measure_image` for every panel image: a DataFrame (columns :data:`PANEL_COLUMNS`,
    one row per image, in ``images``' order) and the images of each row, by name."""
    rows, crops = [], {}
    net.eval()
    for name, img in tqdm(images.items(), desc=f"panel x{net.scale}", disable=not progress, leave=False):
        row, crops[name] = measure_image(net, name, img, seed=seed, tile=tile)
        rows.append(row)
    return pd.DataFrame(rows, columns=PANEL_COLUMNS), crops


GOALS = (  # the goals: (flag, what it asks)
    ("below_bicubic", f"no image more than {BELOW_DB} dB below Bicubic & Bicubic"),
    (
        "local_failure",
        f"no local failure (worst {BLOCK}×{BLOCK} block > {LOCAL_ABS:g}/255 and > {LOCAL_RATIO:g}× bicubic's)",
    ),
    ("latent_far", f"|z| ≤ {Z_LIMIT:g}"),
    ("lr_out_of_range", f"LR before quantisation within [{LR_RANGE[0]:g}, {LR_RANGE[1]:g}]"),
)


def goals_table(failing: dict[str, list[str]], total: int) -> list[str]:
    """The goals against the measurements, Markdown table lines: ``failing`` maps each flag of
    :data:`GOALS` to the images that fail it, of ``total`` measured (:func:`panel_summary`, model cards)."""
    rows = [[goal, f"{len(failing[flag])} of {total}", ", ".join(failing[flag]) or "none"] for flag, goal in GOALS]
    return markdown_table(["Goal", "Images failing", "Which"], rows)


def panel_summary(frame: pd.DataFrame, record: dict) -> str:
    """A short Markdown page: the goals against the measurements, the flagged images, provenance.

    Parameters
    ----------
    frame : DataFrame
        :func:`run_panel`'s rows (one scale).
    record : dict
        Provenance (model file, sha256, commit, date, CPU, ...), listed at the foot.
    """
    scale = int(frame["scale"].iloc[0]) if len(frame) else record.get("scale", "?")
    lines = [f"# Generalisation panel, ×{scale}", "", f"{len(frame)} images unlike the training data (one draw of z)."]
    lines += ["", "## Goals (the issue) against the measurements", ""]
    lines += goals_table({flag: frame.loc[frame[flag], "image"].tolist() for flag, _ in GOALS}, len(frame))
    flagged = frame[frame[[flag for flag, _ in GOALS]].any(axis=1)].sort_values("worst_block_irn", ascending=False)
    lines += ["", "## Flagged images (worst block first)", ""]
    header = ["Image", "IRN Y-PSNR", "Bicubic Y-PSNR", "Worst block IRN / bicubic", "LR range", "max |z|", "Flags"]
    rows = [
        [
            r.image, f"{r.psnr_y_irn:.2f}", f"{r.psnr_y_bicubic:.2f}",
            f"{r.worst_block_irn:.1f} / {r.worst_block_bicubic:.1f} at ({r.worst_block_top}, {r.worst_block_left})",
            f"{r.lr_min:.2f}..{r.lr_max:.2f}", f"{r.z_max:.1f}",
            ", ".join(flag for flag, _ in GOALS if getattr(r, flag)),
        ]
        for r in flagged.itertuples()
    ]  # fmt: skip
    lines += markdown_table(header, rows) if rows else ["none"]
    lines += ["", "Every image is in the CSV beside this page (columns: `irnlib.experiments.panel.PANEL_COLUMNS`)."]
    lines += ["", "## Provenance", ""] + [f"- {key}: {value}" for key, value in record.items()]
    return "\n".join(lines) + "\n"


def worst_crops_figure(frame: pd.DataFrame, crops: dict, count: int = 6, context: int = 32) -> Figure:
    """The images with the worst IRN blocks: IRN's worst 32×32 block with ``context`` pixels around,
    beside bicubic's reconstruction and the HR over the same region (nearest-neighbour enlarged)."""
    worst = frame.sort_values("worst_block_irn", ascending=False).head(count)
    fig = Figure(figsize=(7.5, 2.6 * max(len(worst), 1)))
    axes = fig.subplots(max(len(worst), 1), 3, squeeze=False)
    for ax_row, r in zip(axes, worst.itertuples()):
        images = crops[r.image]
        h, w = images["hr"].shape[:2]
        top, left = max(r.worst_block_top - context, 0), max(r.worst_block_left - context, 0)
        bottom, right = min(r.worst_block_top + BLOCK + context, h), min(r.worst_block_left + BLOCK + context, w)
        for ax, key, label in zip(ax_row, ("irn", "bicubic", "hr"), ("IRN", "Bicubic", "HR")):
            ax.imshow(images[key][top:bottom, left:right], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            error = {"irn": r.worst_block_irn, "bicubic": np.nan, "hr": np.nan}[key]
            ax.set_title(f"{r.image}: {label}" + (f" (block {error:.0f}/255)" if key == "irn" else ""), fontsize=8)
        bic_block = block_errors(images["bicubic"], images["hr"])[
            r.worst_block_top // BLOCK, r.worst_block_left // BLOCK
        ]
        ax_row[1].set_title(f"{r.image}: Bicubic (same block {bic_block:.0f}/255)", fontsize=8)
    fig.suptitle(f"Worst IRN blocks, ×{int(worst['scale'].iloc[0]) if len(worst) else '?'}", fontsize=9)
    fig.tight_layout()
    return fig


def write_panel(frame: pd.DataFrame, crops: dict, out, record: dict) -> dict[str, Path]:
    """Write ``panel_x{s}.csv``, ``panel_x{s}.md`` and ``panel_x{s}_worst.png`` into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scale = int(frame["scale"].iloc[0])
    csv = evaluate.write_csv(frame, out / f"panel_x{scale}.csv")
    md = atomic_write(out / f"panel_x{scale}.md", lambda tmp: Path(tmp).write_text(panel_summary(frame, record)))
    png = save_figure(worst_crops_figure(frame, crops), f"panel_x{scale}_worst.png", folder=out)
    return {"csv": csv, "markdown": md, "figure": png}


def panel(
    scale: int,
    checkpoint=None,
    out=None,
    *,
    datasets=(),
    data_root=None,
    max_side: int = MAX_SIDE,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Measure one IRN model on the panel and write the results; returns the DataFrame.

    ``checkpoint`` defaults to :func:`irnlib.protocol.weights.choose_weights` ``("rescale", scale)``,
    ``out`` to ``<results>/panel``; photographs are whole up to ``max_side`` pixels a side (:data:`MAX_SIDE`).
    Writes ``panel_x{s}.csv``, ``.md`` and ``_worst.png`` (:func:`write_panel`); ``python -m irnlib.experiments.panel``.
    """  # fmt: skip
    checkpoint = Path(checkpoint) if checkpoint else choose_weights("rescale", scale)
    net = load_checkpoint(checkpoint).eval()
    if net.scale != scale:
        raise ValueError(f"{checkpoint} is an x{net.scale} model, but --scale {scale} was asked for")
    if net_device(net).type == "cpu":
        tune_cpu_allocator()
    train_set = model_train_set(checkpoint)
    images = panel_images(train_set, max_side=max_side, datasets=datasets, data_root=data_root, scale=scale)
    frame, crops = run_panel(net, images, seed=seed, progress=progress)
    record = {
        "model": short_path(checkpoint), "sha256": sha256_file(checkpoint), "train_set": train_set or "unknown",
        "left out": ", ".join(sorted(excluded_photographs(train_set))), "scale": scale, "seed of z": seed,
        "max side": max_side, "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu_model(), "torch threads": torch.get_num_threads(),
        "command": f"python -m irnlib.experiments.panel --scale {scale}"
        + (f" --datasets {' '.join(datasets)}" if datasets else ""),
    }  # fmt: skip
    write_panel(frame, crops, out if out is not None else results_root() / "panel", record)
    return frame


def main(argv=None) -> int:
    """``python -m irnlib.experiments.panel``: the panel for one model and scale."""
    parser = argparse.ArgumentParser(prog="python -m irnlib.experiments.panel", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, choices=(2, 4, 8), required=True)
    parser.add_argument("--checkpoint", help="IRN weights (default: choose_weights('rescale', scale))")
    parser.add_argument("--out", help="output folder (default: <results>/panel)")
    parser.add_argument("--datasets", nargs="*", default=(), help="test sets under $IRN_DATA to add, e.g. Set14 BSD100")
    parser.add_argument("--max-side", type=int, default=MAX_SIDE, help="crop photographs to at most this side")
    parser.add_argument("--seed", type=int, default=0, help="seed of the one draw of z")
    args = parser.parse_args(argv)
    apply_thread_policy()  # IRN_THREADS / OMP_NUM_THREADS, or sized for the machine's load
    frame = panel(args.scale, args.checkpoint, args.out, datasets=args.datasets, max_side=args.max_side, seed=args.seed)
    flags = [flag for flag, _ in GOALS]
    print(frame[["image", "psnr_gap_db", "worst_block_irn", "worst_block_bicubic", "lr_min", "lr_max", "z_max", *flags]]
          .to_string(index=False, float_format=lambda v: f"{v:.2f}"))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
