"""Summaries of per-image results over the draws of ``z``: the one place that defines them.

The per-image CSVs (:mod:`irnlib.protocol.evaluate`) hold one line per image and draw of ``z``.
A group's number, as the paper computes it, is the **mean over draws** of the **image-averaged**
metric. How much the draws of ``z`` move that number is given two ways, each under its own
name (the paper: under 0.02 dB):

- ``<metric>_range``: max − min over the draws of the image-averaged metric (Table 1, model cards);
- ``<metric>_std``: the standard deviation (``ddof=0``) over the draws of the same averages
  (the ablations).

One draw (Bicubic & Bicubic, ``z = 0``) gives a range and a standard deviation of 0.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["TABLE1_KEYS", "METRICS", "DRAW_METRICS", "KEY_DEFAULTS", "summarize_draws"]

# Groups of Table 1 and the model cards: one checkpoint at one temperature on one test set.
TABLE1_KEYS = ("dataset", "method", "scale", "checkpoint", "temperature")
METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "lr_psnr_y", "lr_ssim_y")
DRAW_METRICS = ("psnr_y", "ssim_y")  # those given with a range and a standard deviation over draws
# A key column that a CSV lacks or leaves empty: bicubic rows have no checkpoint, and rows
# written before the temperature column existed (and bicubic rows) are at the paper's temperature 1.
KEY_DEFAULTS = {"checkpoint": "", "temperature": 1.0}


def _with_keys(per_image: pd.DataFrame, keys) -> pd.DataFrame:
    frame = per_image.copy()
    for key in keys:
        if key in KEY_DEFAULTS:
            default = KEY_DEFAULTS[key]
            column = frame[key] if key in frame else pd.Series(default, index=frame.index)
            frame[key] = column.astype(float if key == "temperature" else object).fillna(default)
    return frame


def summarize_draws(
    per_image: pd.DataFrame, keys=TABLE1_KEYS, metrics=METRICS, draw_metrics=DRAW_METRICS
) -> pd.DataFrame:
    """Per group of ``keys``: each metric's mean over draws of its image average, and how much the draws vary.

    For each group and each draw of ``z``, the metrics are averaged over the images; the
    summary of a metric is the mean of those per-draw averages. Groups keep the order in which
    they first appear; a key that is empty (``NaN``, e.g. the training seed of a model the
    ablations did not train) is a group of its own.

    Parameters
    ----------
    per_image : pandas.DataFrame
        Per-image rows (:data:`irnlib.protocol.evaluate.CSV_COLUMNS`, plus any key columns).
    keys : sequence of str
        Columns that define a group (default :data:`TABLE1_KEYS`; ``checkpoint`` and
        ``temperature`` are filled as :data:`KEY_DEFAULTS` says).
    metrics : sequence of str
        Columns to summarise (default :data:`METRICS`).
    draw_metrics : sequence of str
        Metrics also given with ``_range`` and ``_std`` over draws (default ``psnr_y``, ``ssim_y``).

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``keys``; ``images`` (images per draw, the largest count over
        draws); ``draws`` (distinct draws); each metric ``m`` (mean over draws of the image
        average); for each of ``draw_metrics``, ``m_range`` (max − min over draws) and ``m_std``
        (standard deviation over draws, ``ddof=0``).
    """
    keys, metrics = list(keys), list(metrics)
    frame = _with_keys(per_image, keys)
    by_draw = frame.groupby(keys + ["draw"], sort=False, dropna=False)
    per_draw = by_draw[metrics].mean()
    per_draw["images"] = by_draw["image"].nunique()
    grouped = per_draw.reset_index().groupby(keys, sort=False, dropna=False)
    out = grouped[metrics].mean()
    for metric in draw_metrics:
        out[f"{metric}_range"] = grouped[metric].max() - grouped[metric].min()
        out[f"{metric}_std"] = grouped[metric].std(ddof=0)
    out["draws"] = grouped["draw"].nunique()
    out["images"] = grouped["images"].max()
    return out.reset_index()
