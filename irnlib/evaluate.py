"""The paper's evaluation protocol, and tiled IRN inference for images of any size.

Protocol (the official IRN test script): the HR image is mod-cropped to a multiple of the
scale ``s``; IRN downscales it and the LR is quantized to 8 bits; the LR is upscaled with a
fresh latent ``z ~ N(0, 1)``; the reconstruction is clamped and rounded to uint8
(:func:`irnlib.images.to_image`) and compared with the HR on the Y channel with a border of
``s`` pixels (PSNR and SSIM, :mod:`irnlib.metrics`). The kit repeats the upscaling for
several independent, seeded draws of ``z`` (the paper: 5, spread under 0.02 dB) and also
records RGB PSNR and how close IRN's LR is to the MATLAB-bicubic LR (no border, as the
official script). The baseline "Bicubic & Bicubic" is MATLAB ``imresize`` down and up, uint8
in between.

Tiling. An :class:`~irnlib.network.InvBlock` output pixel depends on input pixels within a
radius of :data:`HALO` = 10 at its level's resolution: ``y1 = x1 + F(x2)`` reads 5 pixels
around (five 3×3 convolutions), and ``G(y1)``, ``H(y1)`` read another 5 around ``y1``. The
Haar levels are exact 2×2 block transforms. The tiled functions below therefore run the
network one operation at a time: each InvBlock is applied tile by tile to its level's
feature map, every tile read with a margin of :data:`HALO` pixels (cut only where the real
image ends, so the convolutions zero-pad exactly where the whole-image network does), and
only the tile's core is kept. The result equals the whole-image result up to floating-point
rounding, while the large intermediate activations of the dense subnets (up to 140
channels) exist for one tile at a time. What stays image-sized is the network's state,
``3·H·W`` float values (12 bytes per HR pixel), plus the input and output.

Conventions: batches are float tensors ``(B, 3, H, W)`` in ``[0, 1]``; images are uint8
``(H, W, 3)`` RGB arrays.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .datasets import REPO_ROOT, PairedTestSet, TestPair, list_images
from .images import atomic_write, load_image, save_png, to_batch, to_image
from .imresize import imresize
from .metrics import psnr, ssim
from .network import IRN, InvBlock, quantize

__all__ = [
    "HALO",
    "TILE",
    "CSV_COLUMNS",
    "resolve_device",
    "forward",
    "inverse",
    "downscale",
    "upscale",
    "downscale_image",
    "upscale_image",
    "draw_seed",
    "bicubic_rescale",
    "sr_metrics",
    "lr_metrics",
    "evaluate_pair",
    "evaluate_dataset",
    "write_csv",
    "Reconstructions",
    "reconstruct",
    "CheckpointInfo",
    "describe_checkpoint",
    "dataset_version",
]

HALO = 10  # receptive radius of one InvBlock, in pixels of its level's feature map
TILE = 128  # default tile side (core, without the halo), in pixels of each level's feature map

# Columns of the per-image CSV, in order (see evaluate_dataset).
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
]


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------------------
# Tiled inference
# --------------------------------------------------------------------------------------


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` ranges of at most ``tile`` covering ``range(length)``."""
    return [(start, min(start + tile, length)) for start in range(0, length, tile)]


def _tiled(fn, x: torch.Tensor, tile: int | None, channels_last: bool) -> torch.Tensor:
    """Apply a shape-preserving, :data:`HALO`-local function ``fn`` to ``x`` tile by tile.

    Each tile is read with a margin of ``HALO`` pixels (clipped at the image border) and
    only its core is written to the output, so the result equals ``fn(x)``.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return fn(x.contiguous(memory_format=fmt)).contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for top, bottom in _spans(h, tile):
        r0, r1 = max(top - HALO, 0), min(bottom + HALO, h)
        for left, right in _spans(w, tile):
            c0, c1 = max(left - HALO, 0), min(right + HALO, w)
            piece = fn(x[:, :, r0:r1, c0:c1].contiguous(memory_format=fmt))
            out[:, :, top:bottom, left:right] = piece[:, :, top - r0 : bottom - r0, left - c0 : right - c0]
    return out


def _check_tile(tile: int | None) -> None:
    if tile is not None and (not isinstance(tile, (int, np.integer)) or tile < 1):
        raise ValueError(f"tile must be a positive int (pixels of a feature map) or None, got {tile!r}")


def forward(net: IRN, x: torch.Tensor, *, tile: int | None = TILE, channels_last: bool = True) -> torch.Tensor:
    """``net(x)`` computed tile by tile: ``(B, C, H, W) -> (B, C·s², H/s, W/s)``.

    Parameters
    ----------
    net : IRN
    x : float tensor (B, C, H, W)
        ``H`` and ``W`` multiples of ``net.scale``.
    tile : int or None
        Tile side in pixels of each level's feature map (``None``: whole image at once).
        The working memory of one InvBlock is about ``(tile + 20)² × 300`` floats.
    channels_last : bool
        Run the convolutions in NHWC layout (faster on CPU; equal up to float rounding).
    """
    _check_tile(tile)
    for op in net.operations:
        x = _tiled(op, x, tile, channels_last) if isinstance(op, InvBlock) else op(x)
    return x


def inverse(net: IRN, y: torch.Tensor, *, tile: int | None = TILE, channels_last: bool = True) -> torch.Tensor:
    """``net.inverse(y)`` computed tile by tile (see :func:`forward`)."""
    _check_tile(tile)
    for op in reversed(net.operations):
        y = _tiled(op.inverse, y, tile, channels_last) if isinstance(op, InvBlock) else op.inverse(y)
    return y


def downscale(net: IRN, hr: torch.Tensor, *, tile: int | None = TILE, channels_last: bool = True) -> torch.Tensor:
    """Tiled :meth:`IRN.downscale`: HR ``(B, C, H, W)`` in [0, 1] -> quantized LR ``(B, C, ⌈H/s⌉, ⌈W/s⌉)``.

    Sizes that are not multiples of ``s`` are padded exactly as :meth:`IRN.downscale` does
    (reflection at the bottom/right); crop back with ``size=`` in :func:`upscale`.
    """
    padded = net._pad_to_multiple(hr)  # the network's own padding rule
    return quantize(forward(net, padded, tile=tile, channels_last=channels_last)[:, : net.channels])


def upscale(
    net: IRN,
    lr: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    size: tuple[int, int] | None = None,
    *,
    tile: int | None = TILE,
    channels_last: bool = True,
) -> torch.Tensor:
    """Tiled :meth:`IRN.upscale`: LR ``(B, C, h, w)`` -> HR ``(B, C, h·s, w·s)``, not clamped.

    The latent ``z ~ N(0, temperature²)`` is drawn for the whole LR at once, with the same
    call as :meth:`IRN.upscale`, so the same ``generator`` state gives the same result as
    the untiled method.
    """
    z = net.sample_latent(lr, temperature, generator)
    hr = inverse(net, torch.cat((lr, z), 1), tile=tile, channels_last=channels_last)
    hr = hr[:, : net.channels]
    if size is not None:
        hr = hr[..., : size[0], : size[1]]
    return hr


def _net_device(net: IRN) -> torch.device:
    return next(net.parameters()).device


def downscale_image(net: IRN, img: np.ndarray, *, tile: int | None = TILE) -> np.ndarray:
    """Downscale a uint8 ``(H, W, 3)`` image of any size with IRN; returns the 8-bit LR.

    The LR has shape ``(⌈H/s⌉, ⌈W/s⌉, 3)``; the computation runs on the network's device
    in tiles (see :func:`forward`).
    """
    with torch.inference_mode():
        lr = downscale(net, to_batch(img).to(_net_device(net)), tile=tile)
    return to_image(lr)


def upscale_image(
    net: IRN,
    lr_img: np.ndarray,
    *,
    size: tuple[int, int] | None = None,
    temperature: float = 1.0,
    seed: int | None = 0,
    tile: int | None = TILE,
) -> np.ndarray:
    """Upscale a uint8 LR ``(h, w, 3)`` image with IRN; returns uint8 ``(h·s, w·s, 3)``.

    Parameters
    ----------
    size : (H, W), optional
        Crop the result to the original HR size (after :func:`downscale_image` of an image
        whose sides were not multiples of ``s``).
    temperature : float
        Standard deviation of the latent ``z`` (1 in the paper).
    seed : int or None
        Seed of the latent draw (CPU generator, so results agree across devices);
        ``None`` draws from torch's global generator.
    """
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    with torch.inference_mode():
        lr = to_batch(lr_img).to(_net_device(net))
        sr = upscale(net, lr, temperature, generator=gen, size=size, tile=tile)
    return to_image(sr)


# --------------------------------------------------------------------------------------
# Metrics of one image
# --------------------------------------------------------------------------------------


def draw_seed(seed: int, dataset: str, image: str, draw: int) -> int:
    """Seed of draw ``draw`` of ``z`` for one image: independent of the evaluation order."""
    key = zlib.crc32(f"{dataset}/{image}".encode())
    return int(np.random.SeedSequence([int(seed), key, int(draw)]).generate_state(1)[0])


def bicubic_rescale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The "Bicubic & Bicubic" baseline: MATLAB ``imresize`` down by ``s``, uint8, then up."""
    return imresize(imresize(hr, 1 / scale), scale)


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
    """Per-draw metric rows for one test image (see :func:`evaluate_dataset`).

    Parameters
    ----------
    pair : TestPair
        HR (mod-cropped) and its bicubic LR reference.
    net : IRN or None
        ``None`` evaluates Bicubic & Bicubic (one deterministic row, ``draw = 0``).
    lr_png_dir : path, optional
        Write IRN's 8-bit LR as ``<lr_png_dir>/<image>.png`` and read it back before
        upscaling (a true file round trip).
    temperature : float
        Standard deviation of ``z`` at upscaling (the paper: 1; 0 upscales with ``z = 0``).
    lr_transform : callable, optional
        Applied to the uint8 LR (IRN's or the bicubic one) before upscaling, e.g. a JPEG
        round trip (:func:`irnlib.images.jpeg_round_trip`); what happens to LR images in
        practice. The LR metrics are measured before it.
    """
    if net is None:
        lr_img = pair.lr if lr_transform is None else lr_transform(pair.lr)
        sr = imresize(lr_img, scale)
        return [_row(dataset, pair, "bicubic", scale, 0, "", "", **sr_metrics(sr, pair.hr, scale))]
    device = _net_device(net)
    with torch.inference_mode():
        lr = downscale(net, to_batch(pair.hr).to(device), tile=tile)
    lr_img = np.ascontiguousarray(to_image(lr))  # same memory layout as a decoded PNG
    if lr_png_dir is not None:
        path = save_png(Path(lr_png_dir) / f"{pair.name}.png", lr_img, {"source": f"IRN x{scale} LR of {pair.name}"})
        lr_img = load_image(path)
        lr = to_batch(lr_img).to(device)
    lr_scores = lr_metrics(lr_img, pair.lr)
    if lr_transform is not None:
        lr = to_batch(lr_transform(lr_img)).to(device)
    rows = []
    for draw in range(draws):
        draw_s = draw_seed(seed, dataset, pair.name, draw)
        gen = torch.Generator().manual_seed(draw_s)  # CPU generator: same z on every device
        with torch.inference_mode():
            sr = to_image(upscale(net, lr, temperature, generator=gen, tile=tile))
        scores = sr_metrics(sr, pair.hr, scale)
        rows.append(_row(dataset, pair, "irn", scale, draw, draw_s, checkpoint, **scores, **lr_scores))
    return rows


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
) -> pd.DataFrame:
    """Evaluate one method on one test set with the paper's protocol; one row per image and draw.

    Parameters
    ----------
    dataset : str
        Dataset name (``"Set5"``, ``"embedded-test"``, ...; see :mod:`irnlib.datasets`).
    scale : int
        Scale factor; must equal ``net.scale`` for IRN.
    net : IRN or None
        The network (on the device to run on, in eval mode), or ``None`` for Bicubic & Bicubic.
    draws : int
        Independent draws of ``z`` per image (the paper: 5).
    seed : int
        Base seed; draw ``d`` of image ``i`` uses :func:`draw_seed` ``(seed, dataset, i, d)``.
    root : path, optional
        Data root (see :func:`irnlib.datasets.data_root`).
    tile : int or None
        Tile side for IRN (see :func:`forward`).
    lr_png_dir : path, optional
        Round-trip IRN's LR through 8-bit PNG files in this folder.
    checkpoint : str
        Label of the checkpoint, stored in the ``checkpoint`` column.
    max_images : int, optional
        Evaluate only the first images of the dataset (file-name order).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CSV_COLUMNS`: ``dataset, image, method ("bicubic" | "irn"), scale,
        draw, seed, height, width, psnr_y, ssim_y, psnr_rgb`` and, for IRN, ``lr_psnr_y,
        lr_ssim_y, lr_psnr_rgb`` (IRN's LR against the bicubic LR), ``checkpoint``.

    Raises
    ------
    FileNotFoundError
        If the dataset is not on disk (the message says where it looked).
    """
    from tqdm.auto import tqdm

    if net is not None and net.scale != scale:
        raise ValueError(f"evaluate_dataset: the network is x{net.scale}, but scale={scale} was asked for")
    if draws < 1:
        raise ValueError(f"evaluate_dataset: draws must be at least 1, got {draws}")
    test_set = PairedTestSet(dataset, scale, root)
    method = "bicubic" if net is None else "irn"
    count = len(test_set) if max_images is None else min(int(max_images), len(test_set))
    rows = []
    for i in tqdm(range(count), desc=f"{method} x{scale} {dataset}", disable=not progress, leave=False):
        rows += evaluate_pair(
            test_set[i], scale, dataset, net=net, draws=draws, seed=seed, tile=tile,
            lr_png_dir=lr_png_dir, checkpoint=checkpoint,
        )
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def write_csv(frame: pd.DataFrame, path) -> Path:
    """Write a DataFrame as CSV atomically (full float precision, no index)."""
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.10g"))


# --------------------------------------------------------------------------------------
# Examples, checkpoints and data versions (for figures and provenance)
# --------------------------------------------------------------------------------------


@dataclass
class Reconstructions:
    """One test image through both pipelines, all uint8 ``(H, W, 3)`` (LRs ``(H/s, W/s, 3)``)."""

    name: str
    hr: np.ndarray
    bicubic_lr: np.ndarray
    bicubic_sr: np.ndarray
    irn_lr: np.ndarray | None = None
    irn_sr: np.ndarray | None = None


def reconstruct(pair: TestPair, scale: int, net: IRN | None = None, *, seed: int = 0, tile: int | None = TILE) -> Reconstructions:
    """Bicubic & Bicubic and (if ``net`` is given) IRN reconstructions of one test image."""
    out = Reconstructions(pair.name, pair.hr, pair.lr, bicubic_rescale(pair.hr, scale))
    if net is not None:
        out.irn_lr = downscale_image(net, pair.hr, tile=tile)
        out.irn_sr = upscale_image(net, out.irn_lr, seed=seed, tile=tile)
    return out


PAPER_ITERATIONS = 500_000


@dataclass
class CheckpointInfo:
    """What is known about a checkpoint file, for labels and provenance.

    Attributes
    ----------
    path : Path
    exists : bool
    training : str
        How it was trained: e.g. ``"2,000 iterations, profile smoke (shortened run; the
        paper trains 500,000)"``, ``"official checkpoint"`` or ``"training unknown ..."``.
    shortened : bool
        True when the run is known to be shorter than the paper's 500k iterations.
    config_path : Path or None
        The configuration JSON found beside the checkpoint.
    config : dict
    """

    path: Path
    exists: bool
    training: str
    shortened: bool = False
    config_path: Path | None = None
    config: dict = field(default_factory=dict)

    def label(self, root: Path = REPO_ROOT) -> str:
        """``"IRN (this kit, <checkpoint>, <training>)"``."""
        return f"IRN (this kit, {_short_path(self.path, root)}, {self.training})"


def _short_path(path: Path, root: Path = REPO_ROOT) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def describe_checkpoint(path) -> CheckpointInfo:
    """Describe how a checkpoint was trained, from the training run folder it lives in.

    A model exported by :func:`irnlib.train.train` sits beside the run's ``config.json``
    (iterations, profile, training set) and ``provenance.json`` (status, iterations done).
    A run shorter than the paper's 500k iterations, or one still running, is marked as
    shortened. Without a ``config.json``, a file under ``data/pretrained/`` is taken to be
    the official release; anything else is "training unknown".
    """
    path = Path(path)
    if not path.is_file():
        return CheckpointInfo(path, False, "missing")
    config_path = path.parent / "config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    if "iterations" in config:
        record = _read_json(path.parent / "provenance.json")
        iterations = int(record.get("iterations_done", config["iterations"]))
        status = record.get("status", "finished")
        text = f"{iterations:,} iterations, profile {config.get('profile', '?')}, trained on {config.get('train_set', '?')}"
        if status != "finished":
            text += f", run {status}"
        shortened = iterations < PAPER_ITERATIONS or status != "finished"
        text += f" (shortened run; the paper trains {PAPER_ITERATIONS:,})" if shortened else ""
        return CheckpointInfo(path, True, text, shortened, config_path, config)
    if path.resolve().parent.name == "pretrained":
        return CheckpointInfo(path, True, "official checkpoint")
    return CheckpointInfo(path, True, "training unknown: no run configuration (config.json) beside the checkpoint")


def dataset_version(name: str, root=None) -> dict:
    """Image count and a content fingerprint of a test set (SHA-256 over file names and bytes).

    Returns
    -------
    dict
        ``{"dataset", "images", "sha256" (first 16 hex digits), "folder"}``.

    Raises
    ------
    FileNotFoundError
        If the dataset is not on disk.
    """
    paths = list_images(name, root)
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.name.encode())
        digest.update(p.read_bytes())
    return {"dataset": name, "images": len(paths), "sha256": digest.hexdigest()[:16], "folder": str(paths[0].parent)}
