"""The paper's evaluation protocol: one (HR, bicubic LR) pair builder, one round trip, its metrics.

Protocol (the official IRN test script): the HR image is mod-cropped to a multiple of the
scale ``s``; IRN downscales it and the LR is quantized to 8 bits; the LR is upscaled with a
fresh latent ``z ~ N(0, 1)``; the reconstruction is clamped and rounded to uint8
(:func:`irnlib.imaging.images.to_image`) and compared with the HR on the Y channel with a border of
``s`` pixels (PSNR and SSIM, :mod:`irnlib.imaging.metrics`). The kit repeats the upscaling for
several independent, seeded draws of ``z`` (the paper: 5, within 0.02 dB of each other) and also
records RGB PSNR and how close IRN's LR is to the MATLAB-bicubic LR (no border, as the
official script). The baseline "Bicubic & Bicubic" is MATLAB ``imresize`` down and up, uint8
in between.

Everything that measures IRN goes through :func:`round_trip` on pairs from
:func:`evaluation_pairs`: Table 1 (:func:`evaluate_dataset`), training's validation
(:func:`irnlib.train.validate`), the ablations, the explorer and notebook 01.

The metrics, one name each (the columns of :data:`CSV_COLUMNS`):

- ``psnr_y``, ``ssim_y``, ``psnr_rgb``: the reconstruction against the HR, border ``s``;
- ``lr_psnr_y``, ``lr_ssim_y``, ``lr_psnr_rgb``: IRN's 8-bit LR against the MATLAB-bicubic
  LR, no border.

Summaries over the draws of ``z`` (:func:`irnlib.protocol.summary.summarize_draws`, for Table 1,
the ablations and the model cards): a dataset's number is the mean over draws of the
image-averaged metric; ``<metric>_range`` is the range, max − min, of those per-draw averages
(Table 1, model cards) and ``<metric>_std`` their standard deviation (the ablations).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from irnlib.data.test_pairs import PairedTestSet, TestPair
from irnlib.imaging.images import center_crop, load_image, save_png, to_batch, to_image
from irnlib.imaging.imresize import imresize
from irnlib.imaging.metrics import psnr, ssim
from irnlib.model.inference import TILE, downscale, upscale
from irnlib.model.network import IRN
from irnlib.runtime.device import net_device
from irnlib.runtime.paths import atomic_write
from irnlib.runtime.threads import tune_cpu_allocator

__all__ = [
    "CSV_COLUMNS",
    "evaluation_pairs",
    "draw_seed",
    "bicubic_rescale",
    "sr_metrics",
    "lr_metrics",
    "RoundTrip",
    "round_trip",
    "evaluate_pair",
    "evaluate_dataset",
    "write_csv",
]

# Columns of the per-image CSV, in order (see evaluate_dataset and the module docstring).
CSV_COLUMNS = [
    "dataset",
    "image",
    "method",
    "scale",
    "draw",
    "seed",
    "height",
    "width",
    "psnr_y",
    "ssim_y",
    "psnr_rgb",
    "lr_psnr_y",
    "lr_ssim_y",
    "lr_psnr_rgb",
    "checkpoint",
    "temperature",  # standard deviation of z at upscaling (1: the paper; 0: z = 0); empty for bicubic
]


def evaluation_pairs(
    dataset: str, scale: int, root=None, *, crop: int | None = None, count: int | None = None
) -> list[TestPair]:
    """(HR, bicubic LR) pairs of a test set, in file-name order.

    Parameters
    ----------
    dataset : str
        A test set name (``"Set5"``, ``"embedded-test"``, ...).
    scale : int
    root : path, optional
        Data root (see :func:`irnlib.runtime.paths.data_root`).
    crop : int, optional
        Centre-crop each HR image to at most ``crop`` pixels a side (a multiple of the
        scale) and take the MATLAB-bicubic LR of the crop; ``None`` keeps the mod-cropped HR.
    count : int, optional
        The first ``count`` images only.
    """
    test_set = PairedTestSet(dataset, scale, root)
    pairs = []
    for i in range(len(test_set) if count is None else min(count, len(test_set))):
        pair = test_set[i]
        if crop:
            hr = center_crop(pair.hr, crop, scale)
            pair = TestPair(pair.name, hr, imresize(hr, 1 / scale))  # MATLAB bicubic of the crop, uint8
        pairs.append(pair)
    return pairs


def draw_seed(seed: int, dataset: str, image: str, draw: int) -> int:
    """Seed of draw ``draw`` of ``z`` for one image: independent of the evaluation order."""
    key = zlib.crc32(f"{dataset}/{image}".encode())
    return int(np.random.SeedSequence([int(seed), key, int(draw)]).generate_state(1)[0])


def bicubic_rescale(pair: TestPair, scale: int, lr_transform=None) -> np.ndarray:
    """The "Bicubic & Bicubic" baseline: the pair's MATLAB-bicubic LR (uint8), optionally
    transformed (e.g. JPEG), upscaled by MATLAB ``imresize``."""
    return imresize(pair.lr if lr_transform is None else lr_transform(pair.lr), scale)


def sr_metrics(sr: np.ndarray, hr: np.ndarray, scale: int) -> dict[str, float]:
    """Y-PSNR, Y-SSIM and RGB PSNR of a uint8 reconstruction, border ``scale`` (the paper)."""
    return {
        "psnr_y": psnr(sr, hr, border=scale),
        "ssim_y": ssim(sr, hr, border=scale),
        "psnr_rgb": psnr(sr, hr, border=scale, y_channel=False),
    }


def lr_metrics(lr: np.ndarray, lr_ref: np.ndarray) -> dict[str, float]:
    """How close a uint8 LR is to the bicubic LR: Y-PSNR, Y-SSIM, RGB PSNR, no border (official)."""
    return {
        "lr_psnr_y": psnr(lr, lr_ref, border=0),
        "lr_ssim_y": ssim(lr, lr_ref, border=0),
        "lr_psnr_rgb": psnr(lr, lr_ref, border=0, y_channel=False),
    }


def _row(dataset: str, pair: TestPair, method: str, scale: int, draw: int, seed, checkpoint: str, **metrics) -> dict:
    row = dict.fromkeys(CSV_COLUMNS, np.nan)
    row.update(
        dataset=dataset,
        image=pair.name,
        method=method,
        scale=scale,
        draw=draw,
        seed=seed,
        height=pair.hr.shape[0],
        width=pair.hr.shape[1],
        checkpoint=checkpoint,
    )
    row.update(metrics)
    return row


@dataclass
class RoundTrip:
    """One HR image through IRN: its 8-bit LR and one reconstruction per draw of ``z``, measured.

    Attributes
    ----------
    lr : uint8 (h, w, 3)
        IRN's LR as stored (before any ``lr_transform``).
    lr_metrics : dict
        :func:`lr_metrics` of ``lr`` against the pair's bicubic LR.
    sr : list of uint8 (H, W, 3)
        The reconstructions, one per generator.
    sr_metrics : list of dict
        :func:`sr_metrics` of each reconstruction against the HR.
    """

    lr: np.ndarray
    lr_metrics: dict
    sr: list
    sr_metrics: list


@torch.inference_mode()
def round_trip(
    net: IRN,
    pair: TestPair,
    generators: list[torch.Generator | None],
    *,
    temperature: float = 1.0,
    tile: int | None = TILE,
    lr: np.ndarray | None = None,
    lr_png: Path | None = None,
    lr_transform=None,
) -> RoundTrip:
    """Downscale ``pair.hr`` with IRN, upscale once per generator, and measure (the protocol).

    Parameters
    ----------
    net : IRN
        On the device to run on, in eval mode.
    pair : TestPair
        HR (sides multiples of the scale) and its bicubic LR (:func:`evaluation_pairs`).
    generators : list of torch.Generator or None
        One per draw of ``z``; the same generator may appear several times (it then goes on
        drawing), ``None`` draws from torch's global generator.
    temperature : float
        Standard deviation of ``z`` at upscaling (the paper: 1; 0 upscales with ``z = 0``).
    tile : int or None
        Tile side (:func:`irnlib.model.inference.forward`); ``None`` runs the whole image as the
        network's own methods do.
    lr : uint8 (h, w, 3), optional
        IRN's LR if already computed (it is then not recomputed).
    lr_png : path, optional
        Write IRN's 8-bit LR to this PNG and read it back before upscaling (a true file
        round trip).
    lr_transform : callable, optional
        Applied to the uint8 LR before upscaling, e.g. a JPEG round trip
        (:func:`irnlib.imaging.images.jpeg_round_trip`). The LR metrics are measured before it.
    """
    device, scale = net_device(net), net.scale
    if lr is None:
        lr_batch = downscale(net, to_batch(pair.hr).to(device), tile=tile)
        lr = np.ascontiguousarray(to_image(lr_batch))  # same memory layout as a decoded PNG
    else:
        lr_batch = to_batch(lr).to(device)
    if lr_png is not None:
        lr = load_image(save_png(lr_png, lr, {"source": f"IRN x{scale} LR of {pair.name}"}))
        lr_batch = to_batch(lr).to(device)
    measured_lr = lr_metrics(lr, pair.lr)
    if lr_transform is not None:
        lr_batch = to_batch(lr_transform(lr)).to(device)
    srs = [to_image(upscale(net, lr_batch, temperature, generator=gen, tile=tile)) for gen in generators]
    return RoundTrip(lr, measured_lr, srs, [sr_metrics(sr, pair.hr, scale) for sr in srs])


def evaluate_pair(
    pair: TestPair,
    scale: int,
    dataset: str,
    *,
    net: IRN | None = None,
    draws: int = 5,
    seed: int = 0,
    tile: int | None = TILE,
    lr_png_dir=None,
    checkpoint: str = "",
    temperature: float = 1.0,
    lr_transform=None,
) -> list[dict]:
    """Per-draw metric rows (columns :data:`CSV_COLUMNS`) for one test image.

    Parameters
    ----------
    pair : TestPair
        HR (mod-cropped) and its bicubic LR reference.
    net : IRN or None
        ``None`` evaluates Bicubic & Bicubic (one deterministic row, ``draw = 0``).
    draws, seed : int
        Draw ``d`` of ``z`` uses :func:`draw_seed` ``(seed, dataset, pair.name, d)``.
    lr_png_dir : path, optional
        Write IRN's 8-bit LR as ``<lr_png_dir>/<image>.png`` and read it back before
        upscaling (a true file round trip).
    temperature, tile, lr_transform
        As in :func:`round_trip` (``lr_transform`` also applies to the bicubic LR).
    """
    if net is None:
        sr = bicubic_rescale(pair, scale, lr_transform)
        return [_row(dataset, pair, "bicubic", scale, 0, "", "", **sr_metrics(sr, pair.hr, scale))]
    seeds = [draw_seed(seed, dataset, pair.name, draw) for draw in range(draws)]
    result = round_trip(
        net, pair, [torch.Generator().manual_seed(s) for s in seeds], temperature=temperature, tile=tile,
        lr_png=None if lr_png_dir is None else Path(lr_png_dir) / f"{pair.name}.png", lr_transform=lr_transform,
    )  # fmt: skip
    return [
        _row(
            dataset,
            pair,
            "irn",
            scale,
            draw,
            seeds[draw],
            checkpoint,
            **scores,
            **result.lr_metrics,
            temperature=float(temperature),
        )
        for draw, scores in enumerate(result.sr_metrics)
    ]


def evaluate_dataset(
    dataset: str,
    scale: int,
    *,
    net: IRN | None = None,
    draws: int = 5,
    seed: int = 0,
    root=None,
    tile: int | None = TILE,
    lr_png_dir=None,
    checkpoint: str = "",
    max_images: int | None = None,
    progress: bool = True,
    temperature: float = 1.0,
) -> pd.DataFrame:
    """Evaluate one method on one test set with the paper's protocol; one row per image and draw.

    Parameters
    ----------
    dataset : str
        Dataset name (``"Set5"``, ``"embedded-test"``, ...; see :mod:`irnlib.data.folders`).
    scale : int
        Scale factor; must equal ``net.scale`` for IRN.
    net : IRN or None
        The network (on the device to run on, in eval mode), or ``None`` for Bicubic & Bicubic.
        On a CPU, glibc's allocator is set to keep freed memory for reuse (process-wide,
        :func:`irnlib.runtime.threads.tune_cpu_allocator`): every image allocates the same large
        blocks again.
    draws : int
        Independent draws of ``z`` per image (the paper: 5).
    seed : int
        Base seed; draw ``d`` of image ``i`` uses :func:`draw_seed` ``(seed, dataset, i, d)``.
    root : path, optional
        Data root (see :func:`irnlib.runtime.paths.data_root`).
    tile : int or None
        Tile side for IRN (see :func:`irnlib.model.inference.forward`).
    lr_png_dir : path, optional
        Round-trip IRN's LR through 8-bit PNG files in this folder.
    checkpoint : str
        Label of the checkpoint, stored in the ``checkpoint`` column.
    max_images : int, optional
        Evaluate only the first images of the dataset (file-name order).
    progress : bool
        Show a tqdm progress bar.
    temperature : float
        Standard deviation of ``z`` at upscaling (the paper: 1; 0 upscales with ``z = 0``,
        as later work reports). Recorded in the ``temperature`` column.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CSV_COLUMNS`: ``dataset, image, method ("bicubic" | "irn"), scale,
        draw, seed, height, width, psnr_y, ssim_y, psnr_rgb`` and, for IRN, ``lr_psnr_y,
        lr_ssim_y, lr_psnr_rgb`` (IRN's LR against the bicubic LR), ``checkpoint``,
        ``temperature`` (IRN only).

    Raises
    ------
    FileNotFoundError
        If the dataset is not on disk (the message says where it looked).
    """
    if net is not None and net.scale != scale:
        raise ValueError(f"evaluate_dataset: the network is x{net.scale}, but scale={scale} was asked for")
    if draws < 1:
        raise ValueError(f"evaluate_dataset: draws must be at least 1, got {draws}")
    test_set = PairedTestSet(dataset, scale, root)
    if net is not None and net_device(net).type == "cpu":
        tune_cpu_allocator()
    method = "bicubic" if net is None else "irn"
    count = len(test_set) if max_images is None else min(int(max_images), len(test_set))
    rows = []
    for i in tqdm(range(count), desc=f"{method} x{scale} {dataset}", disable=not progress, leave=False):
        rows += evaluate_pair(
            test_set[i],
            scale,
            dataset,
            net=net,
            draws=draws,
            seed=seed,
            tile=tile,
            lr_png_dir=lr_png_dir,
            checkpoint=checkpoint,
            temperature=temperature,
        )
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def write_csv(frame: pd.DataFrame, path) -> Path:
    """Write a DataFrame as CSV atomically (full float precision, no index)."""
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.10g"))
