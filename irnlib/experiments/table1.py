"""Table 1 regenerated, as data: the paper's rows as printed next to the kit's measured rows.

Everything the kit reports is computed here from the per-image CSVs that
:func:`irnlib.protocol.evaluate.evaluate_dataset` writes (never typed in), with
:func:`irnlib.protocol.summary.summarize_draws`; the paper's numbers come from :mod:`irnlib.paper`.
The table is a *long* frame (one line per row × dataset; columns :data:`TABLE_COLUMNS`) whose
row labels are short (``"IRN (kit reference)"``): what a row measured is in fields of its own
(``method``, ``weights``, ``training``, ``image_subset``, ``temperature``).

The Markdown page is :mod:`irnlib.experiments.table1_markdown`, the figures
:mod:`irnlib.experiments.figures`, the whole job for one scale :mod:`irnlib.experiments.table1_job`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from irnlib.paper import PAPER_DATASETS, paper_table, paper_value, parse_cell
from irnlib.protocol.summary import TABLE1_KEYS, summarize_draws

__all__ = ["KitRow", "TABLE_COLUMNS", "NOT_AVAILABLE", "load_per_image", "summarize", "build_table"]

NOT_AVAILABLE = "not available"

# Columns of the long table CSV.
TABLE_COLUMNS = [
    "run_id",
    "generated",
    "source",  # "paper" (as printed) or "this kit" (measured)
    "row",  # short label, e.g. "IRN (kit reference)"; the fields below say what the row measured
    "method",  # "bicubic" or "irn" (kit rows)
    "weights",  # the IRN checkpoint's path as shown (kit IRN rows)
    "training",  # how those weights were trained (kit IRN rows)
    "image_subset",  # which images of a set the row averages ("" : all of them)
    "temperature",  # IRN: standard deviation of z at upscaling (1: the paper's protocol)
    "scale",
    "params",
    "dataset",
    "psnr",  # Y-PSNR: mean over draws of z of the dataset average
    "ssim",  # Y-SSIM, the same
    "status",  # "printed", "not printed", "measured" or "not available"
    "images",
    "draws",
    "psnr_y_range",  # max − min over the draws of z of the image-averaged Y-PSNR
    "ssim_y_range",  # the same for Y-SSIM
    "psnr_rgb",
    "lr_psnr_y",
    "lr_ssim_y",
    "paper_row",
    "paper_psnr",
    "paper_ssim",
    "diff_psnr",
    "diff_ssim",
    "note",
]


@dataclass
class KitRow:
    """One row the kit measures (or would have measured) for the table.

    Attributes
    ----------
    label : str
        Short row label as shown, e.g. ``"Bicubic & Bicubic (this kit)"``, ``"IRN (kit reference)"``.
    method : str
        ``"bicubic"`` or ``"irn"``: the ``method`` column of the per-image CSV.
    paper_row : str
        The paper's row to compare with (``"Bicubic & Bicubic"``, ``"IRN (ours)"``; ``""``: none).
    checkpoint : str
        The ``checkpoint`` column value of this row's per-image lines (IRN only): its weights.
    params : str
        Parameter count as shown (e.g. ``"4.35M"``; ``"/"`` for bicubic).
    missing : str
        Non-empty when the row could not be measured: what is missing and how to get it.
    temperature : float
        IRN: standard deviation of z at upscaling (0: z = 0).
    images_of : str
        Average only over the images that the IRN row of this checkpoint measured (IRN may be
        measured on the first N images of a set; bicubic then needs the same images to compare).
    training : str
        How the weights were trained (:attr:`irnlib.model.checkpoint_info.CheckpointInfo.training`).
    subset : str
        Which images of each set the row averages, in words (``""``: all of them).
    """

    label: str
    method: str
    paper_row: str
    checkpoint: str = ""
    params: str = ""
    missing: str = ""
    temperature: float = 1.0
    images_of: str = ""
    training: str = ""
    subset: str = ""


def load_per_image(paths) -> pd.DataFrame:
    """Read and concatenate per-image CSVs (one path or several)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    frames = [pd.read_csv(p, keep_default_na=True, dtype={"checkpoint": str}) for p in paths]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "checkpoint" in frame:
        frame["checkpoint"] = frame["checkpoint"].fillna("")
    return frame


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """Table 1's dataset averages: :func:`irnlib.protocol.summary.summarize_draws` by
    ``dataset, method, scale, checkpoint, temperature`` (``psnr_y``, ``psnr_y_range``, ...)."""
    return summarize_draws(per_image, TABLE1_KEYS)


def _paper_lines(scale: int) -> list[dict]:
    lines = []
    for _, prow in paper_table(scale).iterrows():
        for dataset in PAPER_DATASETS:
            psnr, ssim = parse_cell(prow[dataset])
            status = "not printed" if math.isnan(psnr) else "printed"
            lines.append(
                dict(
                    source="paper",
                    row=prow["method"],
                    scale=scale,
                    params=prow["params"],
                    dataset=dataset,
                    psnr=psnr,
                    ssim=ssim,
                    status=status,
                )
            )
    return lines


def _kit_fields(kit: KitRow, scale: int, dataset: str) -> dict:
    """The fields of a kit line that say what it is (not what it measured)."""
    irn = kit.method == "irn"
    return dict(
        source="this kit",
        row=kit.label,
        method=kit.method,
        weights=kit.checkpoint if irn else "",
        training=kit.training,
        image_subset=kit.subset,
        temperature=float(kit.temperature) if irn else math.nan,
        scale=scale,
        params=kit.params,
        dataset=dataset,
        paper_row=kit.paper_row,
    )


def _kit_line(
    kit: KitRow, scale: int, dataset: str, summary: pd.DataFrame, missing_data: dict[str, str], paper: pd.DataFrame
) -> dict:
    """One kit row × dataset: measured values, or 'not available' with the reason."""
    line = _kit_fields(kit, scale, dataset)
    paper_psnr, paper_ssim = paper_value(kit.paper_row, scale, dataset, paper)
    line.update(paper_psnr=paper_psnr, paper_ssim=paper_ssim)
    if kit.missing or dataset in missing_data:
        line.update(status=NOT_AVAILABLE, note=kit.missing or missing_data[dataset])
        return line
    hit = summary[
        (summary["dataset"] == dataset)
        & (summary["method"] == kit.method)
        & (summary["scale"] == scale)
        & (summary["checkpoint"] == kit.checkpoint)
        & (summary["temperature"].astype(float) == float(kit.temperature) if "temperature" in summary else True)
    ]
    if hit.empty:
        line.update(status=NOT_AVAILABLE, note="no per-image results for this row and dataset")
        return line
    r = hit.iloc[0]
    line.update(
        status="measured",
        psnr=r["psnr_y"],
        ssim=r["ssim_y"],
        images=int(r["images"]),
        draws=int(r["draws"]),
        psnr_y_range=r["psnr_y_range"],
        ssim_y_range=r["ssim_y_range"],
        psnr_rgb=r["psnr_rgb"],
        lr_psnr_y=r["lr_psnr_y"],
        lr_ssim_y=r["lr_ssim_y"],
        diff_psnr=r["psnr_y"] - paper_psnr,
        diff_ssim=r["ssim_y"] - paper_ssim,
    )
    return line


def _summary_of(per_image: pd.DataFrame, scale: int) -> pd.DataFrame:
    summary = summarize(per_image[per_image["scale"] == scale]) if len(per_image) else None
    if summary is None or summary.empty:
        summary = pd.DataFrame(columns=list(TABLE1_KEYS))
    return summary


def _on_images_of(per_image: pd.DataFrame, scale: int, checkpoint: str, summary: pd.DataFrame) -> pd.DataFrame:
    """The summary over only the (dataset, image) pairs that the IRN rows of ``checkpoint`` measured."""
    if not len(per_image):
        return summary
    irn = per_image[(per_image["method"] == "irn") & (per_image["checkpoint"].fillna("") == checkpoint)]
    measured = set(zip(irn["dataset"], irn["image"]))
    same = per_image[[(d, i) in measured for d, i in zip(per_image["dataset"], per_image["image"])]]
    return summarize(same[same["scale"] == scale]) if len(same) else summary.iloc[0:0]


def build_table(
    per_image: pd.DataFrame,
    scale: int,
    kit_rows: list[KitRow],
    datasets: list[str],
    missing_data: dict[str, str] | None = None,
    run_id: str = "",
    generated: str = "",
) -> pd.DataFrame:
    """Table 1 for one scale, in long form (columns :data:`TABLE_COLUMNS`).

    Parameters
    ----------
    per_image : pandas.DataFrame
        Per-image results (:func:`load_per_image` of the CSVs the evaluation wrote).
    scale : int
        2 or 4.
    kit_rows : list of KitRow
        The kit's rows, in display order (labels must differ: a label is a row).
    datasets : list of str
        Datasets the kit was asked to evaluate (folder names), in display order.
    missing_data : dict, optional
        ``dataset -> how to get it`` for datasets that are not on disk.
    run_id, generated : str
        Stamped on every line.
    """
    labels = [kit.label for kit in kit_rows]
    if len(set(labels)) != len(labels):
        raise ValueError(f"build_table: two kit rows share a label: {labels}")
    missing_data = missing_data or {}
    summary = _summary_of(per_image, scale)
    lines = _paper_lines(scale)
    paper = paper_table(scale)
    for kit in kit_rows:
        rows = _on_images_of(per_image, scale, kit.images_of, summary) if kit.images_of else summary
        lines += [_kit_line(kit, scale, dataset, rows, missing_data, paper) for dataset in datasets]
    for line in lines:
        line.update(run_id=run_id, generated=generated)
    return pd.DataFrame(lines, columns=TABLE_COLUMNS)
