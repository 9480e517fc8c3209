"""Validation during training: the validation images and the PSNR of a network on them."""

from __future__ import annotations

import numpy as np
import torch

from irnlib.data.test_pairs import TestPair
from irnlib.imaging.metrics import SSIM_WINDOW
from irnlib.model.network import IRN
from irnlib.protocol.evaluate import evaluation_pairs, round_trip
from irnlib.training.config import TrainConfig
from irnlib.training.errors import SettingsError
from irnlib.training.samples import dataset_problem

__all__ = ["validation_pairs", "validate"]


def validation_pairs(config: TrainConfig) -> list[TestPair]:
    """The validation images: (HR, bicubic LR) pairs of ``val_set``, cropped as configured.

    Raises
    ------
    SettingsError
        If ``val_set`` is unknown, missing or empty, or an image gives an LR smaller than SSIM's
        11×11 window (the validation measures it); the message names the image and the way on.
    """
    try:
        pairs = evaluation_pairs(
            config.val_set, config.scale, config.data_root, crop=config.val_crop, count=config.val_images
        )
    except (FileNotFoundError, ValueError) as err:
        raise dataset_problem("val_set", config.val_set, err, config.data_root) from None
    for pair in pairs:
        height, width = pair.lr.shape[:2]
        if min(height, width) < SSIM_WINDOW:
            raise SettingsError(
                f"val_set={config.val_set}: image {pair.name} gives a {width}x{height} LR at x{config.scale} "
                f"(val_crop={config.val_crop}), smaller than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window; use "
                f"validation images of at least {SSIM_WINDOW * config.scale} pixels a side, or another val_set"
            )
    if not pairs:
        raise SettingsError(f"val_set={config.val_set}: no validation images; use another val_set")
    return pairs


def validate(net: IRN, pairs: list[TestPair], seed: int = 0) -> dict[str, float]:
    """PSNR (dB) of the reconstruction and of IRN's LR against the bicubic LR, image averages.

    The paper's protocol (:func:`irnlib.protocol.evaluate.round_trip`) on the whole images, with
    ``z ~ N(0, 1)`` drawn from one generator seeded with ``seed`` (the same draws at every
    validation). The paper reports Y-PSNR; the official training log reports RGB PSNR (its
    ``psnr`` of the validation images, from an unseeded ``z``): both are here.

    Returns
    -------
    dict
        ``psnr_y``, ``psnr_rgb`` (reconstruction vs HR, border ``s``), ``lr_psnr_y`` and
        ``lr_psnr_rgb`` (IRN's 8-bit LR vs the bicubic LR, no border); the metric names of
        :mod:`irnlib.protocol.evaluate`.
    """
    was_training = net.training
    net.eval()
    generator = torch.Generator().manual_seed(seed)
    trips = [round_trip(net, pair, [generator], tile=None) for pair in pairs]
    net.train(was_training)
    return {
        "psnr_y": float(np.mean([t.sr_metrics[0]["psnr_y"] for t in trips])),
        "psnr_rgb": float(np.mean([t.sr_metrics[0]["psnr_rgb"] for t in trips])),
        "lr_psnr_y": float(np.mean([t.lr_metrics["lr_psnr_y"] for t in trips])),
        "lr_psnr_rgb": float(np.mean([t.lr_metrics["lr_psnr_rgb"] for t in trips])),
    }
