"""The paper's published numbers (Table 1 of Xiao et al., ECCV 2020), held as data.

The numbers live in ``data/paper_tables.csv`` exactly as printed (cells like
``"33.66 / 0.9299"``, ``"38.46 / –"``, ``"–"``); the comment lines at its top say where they
were checked. This module reads and parses them; nothing here is measured by the kit.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from irnlib.runtime.paths import REPO_ROOT

__all__ = [
    "PAPER_CSV",
    "PAPER_DATASETS",
    "PAPER_CITATION",
    "DATASET_COLUMN",
    "BICUBIC_ROW",
    "IRN_ROW",
    "paper_table",
    "paper_source",
    "parse_cell",
    "paper_value",
    "PAPER_ITERATIONS",
    "PAPER_DISTR_LOSS",
]

PAPER_CSV = REPO_ROOT / "data" / "paper_tables.csv"
PAPER_DATASETS = ("Set5", "Set14", "BSD100", "Urban100", "DIV2K")
PAPER_CITATION = 'Xiao et al., "Invertible Image Rescaling", ECCV 2020, Table 1'
BICUBIC_ROW = "Bicubic & Bicubic"
IRN_ROW = "IRN (ours)"
PAPER_ITERATIONS = 500_000  # the paper's training length (TrainConfig's default)
PAPER_DISTR_LOSS = "sum_of_squares"  # the paper's L_distr, Σ z² per image (TrainConfig.distr_loss's default)
DASH = "–"  # the paper's "no value" mark (an en dash)

# Folder name of a test set on disk -> the paper's column (DIV2K is its validation set).
DATASET_COLUMN = {"DIV2K_valid_HR": "DIV2K", "DIV2K_valid": "DIV2K", "B100": "BSD100"}


def parse_cell(cell) -> tuple[float, float]:
    """``"33.66 / 0.9299"`` -> ``(33.66, 0.9299)``; ``"38.46 / –"`` -> ``(38.46, nan)``; ``"–"`` -> ``(nan, nan)``.

    Raises
    ------
    ValueError
        For anything else, naming the cell.
    """
    text = str(cell).strip()
    if text in (DASH, "", "nan"):
        return math.nan, math.nan
    parts = [p.strip() for p in text.split("/")]
    if len(parts) != 2:
        raise ValueError(f"paper table cell {cell!r}: expected 'PSNR / SSIM' or '{DASH}'")
    try:
        return tuple(math.nan if p == DASH else float(p) for p in parts)  # type: ignore[return-value]
    except ValueError as err:
        raise ValueError(f"paper table cell {cell!r}: {err}") from err


def paper_table(scale: int | None = None, path: Path = PAPER_CSV) -> pd.DataFrame:
    """The paper's Table 1 as printed: columns ``scale, method, params`` and one per dataset.

    Parameters
    ----------
    scale : int, optional
        Keep only the rows of this scale (2 or 4), in the paper's order.
    """
    table = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    table["scale"] = table["scale"].astype(int)
    if scale is not None:
        table = table[table["scale"] == scale].reset_index(drop=True)
    return table


def paper_source(path: Path = PAPER_CSV) -> str:
    """The comment lines at the top of the paper CSV (where the numbers come from), joined."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return "\n".join(line.lstrip("# ").rstrip() for line in lines if line.startswith("#"))


def paper_value(method: str, scale: int, dataset: str, table: pd.DataFrame | None = None) -> tuple[float, float]:
    """The paper's ``(PSNR, SSIM)`` for one row and dataset; ``(nan, nan)`` where it prints none.

    ``dataset`` may be a folder name (``"DIV2K_valid_HR"``); datasets the paper does not
    report (e.g. the embedded images) give ``(nan, nan)``.
    """
    table = paper_table(scale) if table is None else table
    column = DATASET_COLUMN.get(dataset, dataset)
    rows = table[(table["method"] == method) & (table["scale"] == scale)]
    if rows.empty or column not in table.columns:
        return math.nan, math.nan
    return parse_cell(rows.iloc[0][column])
