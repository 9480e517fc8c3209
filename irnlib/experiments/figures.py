"""Table 1's figures: the paper's Y-PSNR against the kit's, and a qualitative comparison like the paper's."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from irnlib.imaging.metrics import psnr
from irnlib.paper import DATASET_COLUMN, PAPER_DATASETS

__all__ = ["plot_paper_vs_kit", "qualitative_figure"]

KIT_MARKERS = ("o", "s", "^", "D", "v", "P")  # kit rows compared with the same paper row: one marker each


def _columns(kit: pd.DataFrame) -> list[str]:
    """The x axis: the paper's test sets, then the kit's others."""
    extra = [d for d in dict.fromkeys(kit["dataset"]) if DATASET_COLUMN.get(d, d) not in PAPER_DATASETS]
    return list(PAPER_DATASETS) + extra


def _draw(ax, xs, ys, label: str, **style) -> None:
    """Plot the finite points of a series, with its legend entry; nothing at all when none is finite."""
    points = [(x, y) for x, y in zip(xs, ys) if np.isfinite(y)]
    if points:
        ax.plot(*zip(*points), linestyle="none", ms=8, label=label, **style)


def plot_paper_vs_kit(table: pd.DataFrame, scale: int, ax=None):
    """Point plot of Y-PSNR per dataset: the paper's rows (hollow) and the kit's rows (filled).

    Each paper row compared with a kit row is drawn once, in its own colour; the kit's rows
    compared with it are drawn to its right in the same colour, one marker shape each, side by
    side (a kit row with no paper row in grey). Only what has points gets a legend entry, once: a kit row
    that measured nothing, or a paper row with no printed value there, is not drawn.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 4))
    else:
        fig = ax.figure
    kit = table[table["source"] == "this kit"]
    paper = table[table["source"] == "paper"]
    x_of = {c: i for i, c in enumerate(_columns(kit))}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    paper_rows = [p for p in dict.fromkeys(kit["paper_row"].fillna("")) if p]
    color_of = {p: colors[k % len(colors)] for k, p in enumerate(paper_rows)}
    for name in paper_rows:
        prow = paper[paper["row"] == name]
        _draw(
            ax,
            [x_of[d] - 0.1 for d in prow["dataset"]],
            prow["psnr"].astype(float),
            f"paper: {name}",
            marker="o",
            mfc="none",
            color=color_of[name],
        )
    shapes: dict[str, int] = {}
    for k, (name, group) in enumerate(kit.groupby("row", sort=False)):
        compared = group["paper_row"].fillna("").iloc[0]
        shape = shapes[compared] = shapes.get(compared, -1) + 1
        got = group[group["status"] == "measured"]
        _draw(
            ax,
            [x_of[DATASET_COLUMN.get(d, d)] + 0.1 + 0.06 * k for d in got["dataset"]],  # side by side
            got["psnr"].astype(float),
            f"this kit: {name}",
            marker=KIT_MARKERS[shape % len(KIT_MARKERS)],
            color=color_of.get(compared, "tab:gray"),
        )
    ax.set_xticks(range(len(x_of)))
    ax.set_xticklabels(list(x_of), rotation=15)
    ax.set_ylabel("Y-PSNR (dB)")
    ax.set_title(f"Table 1, ×{scale}: Y-PSNR, the paper's (hollow) and this kit's (filled)", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def _crop_box(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size``² window with the most detail (largest gradient energy)."""
    grey = hr.astype(np.float64).mean(axis=2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    h, w = energy.shape
    step = max(size // 4, 1)
    best, corner = -1.0, (0, 0)
    for top in range(0, max(h - size, 0) + 1, step):
        for left in range(0, max(w - size, 0) + 1, step):
            score = energy[top : top + size, left : left + size].sum()
            if score > best:
                best, corner = score, (top, left)
    return corner


def _panels(hr, bicubic_sr, irn_sr, bicubic_lr, irn_lr, scale: int, top: int, left: int, size: int) -> list:
    """``(title, image)`` of each panel of :func:`qualitative_figure`."""

    def hr_crop(img):
        return img[top : top + size, left : left + size]

    def lr_crop(img):
        enlarged = img[top // scale : (top + size) // scale, left // scale : (left + size) // scale]
        return np.kron(enlarged, np.ones((scale, scale, 1), np.uint8))

    def crop_psnr(img):
        return f"{psnr(hr_crop(img), hr_crop(hr), border=0):.2f} dB"

    panels = [("HR", hr_crop(hr)), (f"Bicubic & Bicubic\n{crop_psnr(bicubic_sr)}", hr_crop(bicubic_sr))]
    if irn_sr is not None:
        panels.append((f"IRN\n{crop_psnr(irn_sr)}", hr_crop(irn_sr)))
        panels.append(("IRN's LR", lr_crop(irn_lr)))
    panels.append(("bicubic LR", lr_crop(bicubic_lr)))
    return panels


def qualitative_figure(
    hr: np.ndarray,
    bicubic_sr: np.ndarray,
    irn_sr: np.ndarray | None,
    bicubic_lr: np.ndarray,
    irn_lr: np.ndarray | None,
    scale: int,
    *,
    crop: int | None = None,
    title: str = "",
):
    """A figure like the paper's qualitative comparison, on one detailed crop.

    Panels: HR crop, Bicubic & Bicubic reconstruction, IRN reconstruction, then IRN's LR and
    the bicubic LR of the same region (shown enlarged by nearest neighbour). IRN panels are
    left out when ``irn_sr`` is ``None``. Titles carry the crop's Y-PSNR.

    Parameters
    ----------
    hr, bicubic_sr, irn_sr : uint8 (H, W, 3)
    bicubic_lr, irn_lr : uint8 (H/s, W/s, 3)
    crop : int, optional
        Crop side in HR pixels (multiple of ``scale``; default ``min(32·s, H, W)``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    size = crop or min(32 * scale, hr.shape[0], hr.shape[1])
    size -= size % scale
    top, left = _crop_box(hr, size)
    top, left = top - top % scale, left - left % scale
    panels = _panels(hr, bicubic_sr, irn_sr, bicubic_lr, irn_lr, scale, top, left, size)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (name, img) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title or f"×{scale}, crop {size}×{size} at ({top}, {left})", fontsize=10)
    fig.tight_layout()
    return fig
