"""Table 1 regenerated: the paper's rows as printed next to the kit's measured rows.

Everything the kit reports is computed here from the per-image CSVs that
:func:`irnlib.protocol.evaluate.evaluate_dataset` writes (never typed in); the paper's numbers come
from :mod:`irnlib.paper`. The table is kept in two forms:

- a *long* CSV (one line per row × dataset, machine-readable; columns :data:`TABLE_COLUMNS`),
- a Markdown page a person can read on its own: the paper's rows (labelled as the paper's),
  the kit's rows (labelled "this kit", with the checkpoint and how it was trained), the
  difference kit − paper for the same row, details (spread across draws, RGB PSNR, IRN's LR
  against the bicubic LR), what was not available and how to get it, and the provenance.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from irnlib.data.datasets import dataset_version, sha256_file
from irnlib.imaging.metrics import psnr
from irnlib.model.checkpoint import describe_checkpoint, load_checkpoint
from irnlib.paper import DATASET_COLUMN, PAPER_CITATION, PAPER_DATASETS, paper_table, paper_value, parse_cell
from irnlib.protocol import evaluate as ev
from irnlib.protocol import profiles
from irnlib.protocol.weights import choose_weights, reference_weights
from irnlib.runtime.device import resolve_device
from irnlib.runtime.paths import atomic_write, data_root, results_root, short_path
from irnlib.runtime.provenance import current_run_id, provenance

__all__ = [
    "KitRow",
    "TABLE_COLUMNS",
    "NOT_AVAILABLE",
    "load_per_image",
    "summarize",
    "build_table",
    "render_markdown",
    "write_table",
    "plot_paper_vs_kit",
    "qualitative_figure",
    "fetch_command",
    "checkpoint_help",
    "Table1",
    "make_table1",
]

NOT_AVAILABLE = "not available"

# Columns of the long table CSV.
TABLE_COLUMNS = [
    "run_id",
    "generated",
    "source",  # "paper" (as printed) or "this kit" (measured)
    "row",
    "scale",
    "params",
    "dataset",
    "psnr",
    "ssim",
    "status",  # "printed", "not printed", "measured" or "not available"
    "images",
    "draws",
    "psnr_spread",  # range (max − min) over the draws of z of the image-averaged Y-PSNR
    "ssim_spread",  # the same for Y-SSIM
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
        Row label as shown, e.g. ``"Bicubic & Bicubic (this kit)"``.
    method : str
        ``"bicubic"`` or ``"irn"``: the ``method`` column of the per-image CSV.
    paper_row : str
        The paper's row to compare with (``"Bicubic & Bicubic"``, ``"IRN (ours)"``).
    checkpoint : str
        The ``checkpoint`` column value of this row's per-image lines (IRN only).
    params : str
        Parameter count as shown (e.g. ``"4.35M"``; ``"/"`` for bicubic).
    missing : str
        Non-empty when the row could not be measured: what is missing and how to get it.
    """

    label: str
    method: str
    paper_row: str
    checkpoint: str = ""
    params: str = ""
    missing: str = ""
    temperature: float = 1.0  # IRN: standard deviation of z at upscaling (0: z = 0)
    # Average only over the images that the IRN row of this checkpoint measured (IRN may be
    # measured on the first N images of a set; bicubic then needs the same images to compare)
    images_of: str = ""


def load_per_image(paths) -> pd.DataFrame:
    """Read and concatenate per-image CSVs (one path or several)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    frames = [pd.read_csv(p, keep_default_na=True, dtype={"checkpoint": str}) for p in paths]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "checkpoint" in frame:
        frame["checkpoint"] = frame["checkpoint"].fillna("")
    return frame


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """Dataset averages of the per-image CSV rows, as the paper computes them.

    For each ``(dataset, method, scale, checkpoint, temperature)`` and each draw of ``z``, the metrics are
    averaged over the images; the result is the mean of those per-draw averages, and
    ``*_spread`` is their range (max − min) across draws (the paper: under 0.02 dB).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, method, scale, checkpoint, temperature, images, draws, psnr_y, ssim_y,
        psnr_y_spread, ssim_y_spread, psnr_rgb, lr_psnr_y, lr_ssim_y``.
    """
    keys = ["dataset", "method", "scale", "checkpoint", "temperature"]
    metrics = ["psnr_y", "ssim_y", "psnr_rgb", "lr_psnr_y", "lr_ssim_y"]
    frame = per_image.copy()
    frame["checkpoint"] = frame["checkpoint"].fillna("")
    # CSVs written before the column existed, and bicubic rows, are at the paper's temperature 1
    frame["temperature"] = frame["temperature"].astype(float).fillna(1.0) if "temperature" in frame else 1.0
    per_draw = frame.groupby(keys + ["draw"], sort=False)[metrics].mean().reset_index()
    images = frame.groupby(keys + ["draw"], sort=False)["image"].nunique().groupby(level=keys, sort=False).max()
    grouped = per_draw.groupby(keys, sort=False)
    out = grouped[metrics].mean()
    out["psnr_y_spread"] = grouped["psnr_y"].max() - grouped["psnr_y"].min()
    out["ssim_y_spread"] = grouped["ssim_y"].max() - grouped["ssim_y"].min()
    out["draws"] = grouped["draw"].nunique()
    out["images"] = images
    return out.reset_index()


def _paper_lines(scale: int, run_id: str, generated: str) -> list[dict]:
    lines = []
    for _, prow in paper_table(scale).iterrows():
        for dataset in PAPER_DATASETS:
            psnr, ssim = parse_cell(prow[dataset])
            lines.append(
                dict(
                    run_id=run_id,
                    generated=generated,
                    source="paper",
                    row=prow["method"],
                    scale=scale,
                    params=prow["params"],
                    dataset=dataset,
                    psnr=psnr,
                    ssim=ssim,
                    status="not printed" if math.isnan(psnr) else "printed",
                )
            )
    return lines


def _kit_line(
    kit: KitRow, scale: int, dataset: str, summary: pd.DataFrame, missing_data: dict[str, str], paper: pd.DataFrame
) -> dict:
    """One kit row × dataset: measured values, or 'not available' with the reason."""
    line = dict(
        source="this kit", row=kit.label, scale=scale, params=kit.params, dataset=dataset, paper_row=kit.paper_row
    )
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
        psnr_spread=r["psnr_y_spread"],
        ssim_spread=r["ssim_y_spread"],
        psnr_rgb=r["psnr_rgb"],
        lr_psnr_y=r["lr_psnr_y"],
        lr_ssim_y=r["lr_ssim_y"],
        diff_psnr=r["psnr_y"] - paper_psnr,
        diff_ssim=r["ssim_y"] - paper_ssim,
    )
    return line


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
        The kit's rows, in display order.
    datasets : list of str
        Datasets the kit was asked to evaluate (folder names), in display order.
    missing_data : dict, optional
        ``dataset -> how to get it`` for datasets that are not on disk.
    run_id, generated : str
        Stamped on every line.
    """
    missing_data = missing_data or {}
    summary = summarize(per_image[per_image["scale"] == scale]) if len(per_image) else None
    if summary is None or summary.empty:
        summary = pd.DataFrame(columns=["dataset", "method", "scale", "checkpoint", "temperature"])
    lines = _paper_lines(scale, run_id, generated)
    paper = paper_table(scale)
    for kit in kit_rows:
        rows = summary
        if kit.images_of and len(per_image):
            irn = per_image[(per_image["method"] == "irn") & (per_image["checkpoint"].fillna("") == kit.images_of)]
            measured = set(zip(irn["dataset"], irn["image"]))
            same = per_image[[(d, i) in measured for d, i in zip(per_image["dataset"], per_image["image"])]]
            rows = summarize(same[same["scale"] == scale]) if len(same) else summary.iloc[0:0]
        for dataset in datasets:
            line = _kit_line(kit, scale, dataset, rows, missing_data, paper)
            line.update(run_id=run_id, generated=generated)
            lines.append(line)
    return pd.DataFrame(lines, columns=TABLE_COLUMNS)


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------


def _num(value, digits: int, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pair(psnr, ssim, signed: bool = False) -> str:
    if psnr is None or (isinstance(psnr, float) and math.isnan(psnr)):
        return "–"
    return f"{_num(psnr, 2, signed)} / {_num(ssim, 4, signed)}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _short_label(label: str) -> str:
    """``"IRN (this kit, path, training)"`` -> ``"IRN (this kit)"`` for the detail tables."""
    return label.split(",")[0] + ")" if "," in label and "(" in label else label


def _dataset_header(dataset: str) -> str:
    column = DATASET_COLUMN.get(dataset, dataset)
    if column in PAPER_DATASETS:
        return column if column == dataset else f"{column} ({dataset})"
    return f"{dataset} (not in the paper)"


def render_markdown(
    table: pd.DataFrame,
    scale: int,
    provenance: dict | None = None,
    conditions: str = "",
) -> str:
    """The Markdown page of one table (see the module docstring).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`build_table` (or read back from its CSV).
    scale : int
    provenance : dict, optional
        Shown at the foot (:func:`irnlib.runtime.provenance.provenance` plus run details).
    conditions : str
        One paragraph under the title that says under what conditions the kit measured
        (profile, data, checkpoint; a shortened run must say so).
    """
    paper = table[table["source"] == "paper"]
    kit = table[table["source"] == "this kit"]
    run_id = str(table["run_id"].iloc[0]) if len(table) else ""
    generated = str(table["generated"].iloc[0]) if len(table) else ""
    lines = [f"# Table 1, ×{scale}: reconstruction PSNR / SSIM (Y channel, border {scale})", ""]
    lines += [
        f"Run `{run_id}`, generated {generated}. Generated by `irnlib.experiments.tables` from the per-image CSV; do not edit.",
        "",
    ]
    if conditions:
        lines += [conditions, ""]

    lines += [f"## The paper's numbers (as printed in {PAPER_CITATION}; not measured by this kit)", ""]
    rows = []
    for name, group in paper.groupby("row", sort=False):
        cells = {r["dataset"]: _pair(r["psnr"], r["ssim"]) for _, r in group.iterrows()}
        rows.append([name, group["params"].iloc[0]] + [cells.get(d, "–") for d in PAPER_DATASETS])
    lines += _md_table(["Downscaling & Upscaling (paper)", "Param"] + list(PAPER_DATASETS), rows) + [""]

    datasets = list(dict.fromkeys(kit["dataset"]))
    notes: dict[str, int] = {}

    def mark(note: str) -> str:
        notes.setdefault(note, len(notes) + 1)
        return f"{NOT_AVAILABLE} [{notes[note]}]"

    lines += ["## Measured by this kit", ""]
    lines += ["Mean over the draws of z of the dataset average (IRN); Bicubic is deterministic.", ""]
    measured, diffs = [], []
    for name, group in kit.groupby("row", sort=False):
        by_ds = {r["dataset"]: r for _, r in group.iterrows()}
        measured.append(
            [name, group["params"].iloc[0] or "–"]
            + [
                _pair(r["psnr"], r["ssim"]) if r["status"] == "measured" else mark(r["note"])
                for r in map(by_ds.get, datasets)
            ]
        )
        diffs.append(
            [f"{_short_label(name)} − paper's {group['paper_row'].iloc[0]}"]
            + [
                _pair(r["diff_psnr"], r["diff_ssim"], signed=True) if r["status"] == "measured" else "–"
                for r in map(by_ds.get, datasets)
            ]
        )
    header = [_dataset_header(d) for d in datasets]
    lines += _md_table(["Row (this kit)", "Param"] + header, measured) + [""]
    lines += ["## Difference, kit − paper (same row; PSNR dB / SSIM)", ""]
    lines += _md_table(["Row"] + header, diffs) + [""]

    lines += ["## Details of the kit's measurements", ""]
    detail_rows = []
    for _, r in kit[kit["status"] == "measured"].iterrows():
        detail_rows.append(
            [
                _short_label(r["row"]),
                r["dataset"],
                int(r["images"]),
                int(r["draws"]),
                _num(r["psnr_spread"], 3),
                _num(r["ssim_spread"], 4),
                _num(r["psnr_rgb"], 2),
                _pair(r["lr_psnr_y"], r["lr_ssim_y"]),
            ]
        )
    lines += _md_table(
        [
            "Row",
            "Dataset",
            "Images",
            "Draws",
            "Y-PSNR spread across draws (dB)",
            "Y-SSIM spread",
            "RGB PSNR (dB)",
            "LR vs bicubic LR (Y-PSNR / SSIM)",
        ],
        detail_rows,
    ) + [""]
    lines += [
        "Spread: max − min of the dataset average over the draws of z (the paper: under 0.02 dB). "
        "LR vs bicubic LR: IRN's 8-bit LR against the MATLAB-bicubic LR, no border.",
        "",
    ]

    if notes:
        lines += ["## Not available", ""]
        lines += [f"{n}. {note}" for note, n in notes.items()] + [""]
    if provenance:
        lines += ["## Provenance", ""]
        lines += [f"- {key}: {value}" for key, value in provenance.items()] + [""]
    return "\n".join(lines)


def write_table(table: pd.DataFrame, markdown: str, stem) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` atomically; returns both paths."""
    stem = Path(stem)
    csv_path = atomic_write(stem.with_suffix(".csv"), lambda tmp: table.to_csv(tmp, index=False, float_format="%.6f"))
    md_path = atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    return csv_path, md_path


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def plot_paper_vs_kit(table: pd.DataFrame, scale: int, ax=None):
    """Point plot of Y-PSNR per dataset: the paper's rows (hollow) and the kit's rows (filled).

    The kit's rows are drawn next to the paper row they are compared with (same colour);
    datasets the kit did not measure show the paper's values only.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4))
    else:
        fig = ax.figure
    kit = table[table["source"] == "this kit"]
    paper = table[table["source"] == "paper"]
    columns = list(PAPER_DATASETS) + [
        d for d in dict.fromkeys(kit["dataset"]) if DATASET_COLUMN.get(d, d) not in PAPER_DATASETS
    ]
    x_of = {c: i for i, c in enumerate(columns)}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, group) in enumerate(kit.groupby("row", sort=False)):
        color = colors[k % len(colors)]
        prow = paper[paper["row"] == group["paper_row"].iloc[0]]
        xs = [x_of[d] - 0.1 for d in prow["dataset"]]
        ax.plot(xs, prow["psnr"], "o", mfc="none", color=color, ms=8, label=f"paper: {group['paper_row'].iloc[0]}")
        got = group[group["status"] == "measured"]
        xs = [x_of[DATASET_COLUMN.get(d, d)] + 0.1 for d in got["dataset"]]
        ax.plot(xs, got["psnr"], "o", color=color, ms=8, label=name if len(name) < 60 else name[:57] + "...")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, rotation=15)
    ax.set_ylabel("Y-PSNR (dB)")
    ax.set_title(f"×{scale}: paper (hollow) vs this kit (filled)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
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
    import matplotlib.pyplot as plt

    size = crop or min(32 * scale, hr.shape[0], hr.shape[1])
    size -= size % scale
    top, left = _crop_box(hr, size)
    top, left = top - top % scale, left - left % scale

    def hr_crop(img):
        return img[top : top + size, left : left + size]

    def lr_crop(img):
        return img[top // scale : (top + size) // scale, left // scale : (left + size) // scale]

    def crop_psnr(img):
        return f"{psnr(hr_crop(img), hr_crop(hr), border=0):.2f} dB"

    panels = [("HR", hr_crop(hr)), (f"Bicubic & Bicubic\n{crop_psnr(bicubic_sr)}", hr_crop(bicubic_sr))]
    if irn_sr is not None:
        panels.append((f"IRN\n{crop_psnr(irn_sr)}", hr_crop(irn_sr)))
        panels.append(("IRN's LR", np.kron(lr_crop(irn_lr), np.ones((scale, scale, 1), np.uint8))))
    panels.append(("bicubic LR", np.kron(lr_crop(bicubic_lr), np.ones((scale, scale, 1), np.uint8))))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (name, img) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title or f"×{scale}, crop {size}×{size} at ({top}, {left})", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# The whole job for one scale (what notebook 02 runs)
# --------------------------------------------------------------------------------------


def fetch_command(dataset: str) -> str:
    """How to get a missing test set: the data notebook's command."""
    return (
        f"{dataset} is not on disk; fetch it with "
        f"`papermill notebooks/00_data_preparation.ipynb out.ipynb -p download True -p datasets '[\"{dataset}\"]'` "
        "(or point data_root / IRN_DATA at a folder that holds it)"
    )


def checkpoint_help(profile: str, scale: int, path) -> str:
    """How to get a missing IRN checkpoint."""
    if profiles.get(profile).official_checkpoints:
        return (
            f"checkpoint {path} not found: place the official IRN_x{scale}.pth (released by the authors, linked "
            "from their repository pkuxmq/Invertible-Image-Rescaling) in data/pretrained/, or train one with "
            f"`papermill notebooks/01_train.ipynb out.ipynb -p profile paper -p scale {scale}`"
        )
    return (
        f"checkpoint {path} not found: train the {profile} model first with "
        f"`papermill notebooks/01_train.ipynb out.ipynb -p profile {profile} -p scale {scale}`, "
        "or pass checkpoints={scale: path}"
    )


def _load_for_table(path: Path, scale: int, device, row: KitRow):
    """Load an IRN checkpoint for the ``scale`` table and fill in ``row.params``."""
    net = load_checkpoint(path, map_location=device)
    if net.scale != scale:
        raise ValueError(f"{path}: is an x{net.scale} checkpoint, but the x{scale} table was asked for")
    row.params = f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M"
    return net


@dataclass
class Table1:
    """The outputs of :func:`make_table1` for one scale."""

    scale: int
    table: pd.DataFrame
    markdown: str
    per_image_path: Path
    csv_path: Path
    md_path: Path
    provenance: dict


def _temperature_label(temperature: float) -> str:
    return "z = 0" if float(temperature) == 0 else f"temperature {float(temperature):g}"


def _conditions(
    profile: profiles.Profile, draws: int, irn: KitRow | None, max_images: int | None, temperatures=(1.0,)
) -> str:
    text = profile.table_note
    if profile.indicative:
        if irn is not None and not irn.missing:
            text += (
                f"; IRN is the {profile.name}-trained checkpoint named in its row (and, where present, the kit's "
                f"reference model, trained on a CPU far shorter than the paper), measured on at most {max_images} "
                "images per dataset, so its numbers are not comparable with the paper's"
            )
        text += "."
    text += (
        f" Protocol: HR mod-cropped to the scale, IRN's LR quantized to 8 bits, upscaled with z ~ N(0, 1), "
        f"{draws} seeded draws of z, Y-channel PSNR/SSIM with a border of the scale; "
        "Bicubic & Bicubic is MATLAB bicubic down and up with uint8 in between."
    )
    others = [float(t) for t in temperatures if float(t) != 1.0]
    if others:
        text += (
            " Rows marked "
            + ", ".join(f'"{_temperature_label(t)}"' for t in others)
            + " upscale with z ~ N(0, T²) at that temperature T instead (z = 0: T = 0), not the paper's protocol."
        )
    return text


def make_table1(
    scale: int,
    *,
    profile: str = "smoke",
    datasets: list[str] | None = None,
    checkpoint=None,
    draws: int | None = None,
    root=None,
    device="auto",
    out_dir=None,
    run_id: str | None = None,
    seed: int = 0,
    max_images: int | None = None,
    progress: bool = True,
    temperatures=(1.0,),
) -> Table1:
    """Measure and write Table 1 for one scale: per-image CSV, table CSV and Markdown.

    Evaluates Bicubic & Bicubic and IRN (if the checkpoint exists) on each available
    dataset, writes ``<out_dir>/table1_x{s}_per_image.csv``, reads it back, and builds
    ``<out_dir>/table1_x{s}.csv`` and ``.md`` from it. Missing datasets and a missing
    checkpoint become "not available" entries that say how to get them.

    Parameters
    ----------
    scale : int
    profile : str
        A profile of :mod:`irnlib.protocol.profiles`: defaults for ``datasets``, ``checkpoint`` and
        ``max_images``, and the label of the page.
    datasets : list of str, optional
        Default :func:`irnlib.protocol.profiles.default_datasets`.
    checkpoint : path, optional
        IRN checkpoint for this scale; default :func:`irnlib.protocol.weights.choose_weights` ``("table1", ...)``. A given
        path that does not exist raises ``FileNotFoundError`` (an absent default is "not available").
    draws : int, optional
        Draws of z per image for IRN (default: the profile's ``draws``; the paper: 5).
    root : path, optional
        Data root.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    out_dir : path, optional
        Default ``results/tables``.
    run_id : str, optional
        Default :func:`irnlib.runtime.provenance.current_run_id` (the pipeline's run id, or a new one).
    seed : int
        Base seed of the draws of z.
    max_images : int, optional
        Measure IRN on at most this many images per dataset (default the profile's
        ``irn_images``: smoke 5, paper all). Bicubic always uses every image.
    temperatures : sequence of float
        One IRN row per temperature, the standard deviation of ``z`` at upscaling: ``1`` is
        the paper's protocol, ``0`` upscales with ``z = 0`` (as later work reports). A row
        at a temperature other than 1 is labelled with it (``"..., z = 0"``).
    """
    profile = profiles.get(profile)
    out_dir = Path(out_dir) if out_dir is not None else results_root() / "tables"
    run_id = run_id or current_run_id()
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    datasets = list(datasets) if datasets else profiles.default_datasets(profile.name, root)
    if checkpoint and not Path(checkpoint).is_file():  # named by the caller: must exist (a default may be absent)
        raise FileNotFoundError(
            f"checkpoint {checkpoint} not found: correct the path, or pass checkpoint=None "
            f"for the profile's ({choose_weights('table1', scale, profile.name)})"
        )
    checkpoint = Path(checkpoint) if checkpoint else choose_weights("table1", scale, profile.name)
    if max_images is None:
        max_images = profile.irn_images
    draws = draws or profile.draws
    device = resolve_device(device)

    versions, missing_data = {}, {}
    for name in datasets:
        try:
            versions[name] = dataset_version(name, root)
        except FileNotFoundError:
            missing_data[name] = fetch_command(name)

    info = describe_checkpoint(checkpoint)
    bicubic = KitRow("Bicubic & Bicubic (this kit)", "bicubic", "Bicubic & Bicubic", params="/")
    irn = KitRow(info.label(), "irn", "IRN (ours)", checkpoint=short_path(checkpoint))
    models = []  # (row, network or None): the profile's checkpoint, then the kit's reference model
    if not info.exists:
        irn.label = f"IRN (this kit, {short_path(checkpoint)})"
        irn.missing = checkpoint_help(profile.name, scale, short_path(checkpoint))
        models.append((irn, None))
    else:
        models.append((irn, _load_for_table(checkpoint, scale, device, irn)))
    reference = reference_weights(scale)
    if reference.is_file() and reference.resolve() != checkpoint.resolve():
        # The kit's own trained model, beside whatever the profile measures (see models/).
        ref_info = describe_checkpoint(reference)
        ref = KitRow(f"IRN (kit reference, {short_path(reference)}, {ref_info.training})", "irn", "IRN (ours)",
                     checkpoint=short_path(reference))  # fmt: skip
        models.append((ref, _load_for_table(reference, scale, device, ref)))

    temperatures = [float(t) for t in dict.fromkeys(temperatures)] or [1.0]
    irn_rows = []  # (row, network or None), one per model and temperature
    for base, net in models:
        for t in temperatures:
            row = KitRow(
                base.label, base.method, base.paper_row, base.checkpoint, base.params, base.missing, temperature=t
            )
            if t != 1.0:
                row.label = f"{base.label}, {_temperature_label(t)}"
            irn_rows.append((row, net))

    frames = []
    for name in versions:
        frames.append(ev.evaluate_dataset(name, scale, root=root, progress=progress))
        for row, net in irn_rows:
            if net is not None:
                frames.append(
                    ev.evaluate_dataset(
                        name,
                        scale,
                        net=net,
                        draws=draws,
                        seed=seed,
                        root=root,
                        checkpoint=row.checkpoint,
                        max_images=max_images,
                        progress=progress,
                        temperature=row.temperature,
                    )
                )
    per_image = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ev.CSV_COLUMNS)
    per_image_path = ev.write_csv(per_image, out_dir / f"table1_x{scale}_per_image.csv")

    kit_rows = [bicubic, *(row for row, _ in irn_rows)]
    measured = [row for row, net in irn_rows if net is not None]
    if max_images and measured and any(v["images"] > max_images for v in versions.values()):
        # IRN saw the first max_images images of a set: bicubic on those same images, to compare
        same = KitRow(f"Bicubic & Bicubic (this kit, on the IRN rows' first {max_images} images)", "bicubic", "",
                      params="/", images_of=measured[0].checkpoint)  # fmt: skip
        kit_rows.insert(1, same)
    table = build_table(load_per_image(per_image_path), scale, kit_rows, datasets, missing_data, run_id, generated)
    record = provenance(
        device,
        run_id=run_id,
        profile=profile.name,
        scale=scale,
        data_root=str(data_root(root)),
        data=", ".join(f"{v['dataset']} ({v['images']} images, sha256 {v['sha256']})" for v in versions.values())
        or "none",
        checkpoint=f"{short_path(checkpoint)} ({info.training})"
        if info.exists
        else f"{short_path(checkpoint)} (missing)",
        reference_model=(
            f"{short_path(reference)} (sha256 {sha256_file(reference)[:16]}; its card: "
            f"{short_path(reference.parent / 'README.md')})"
        )
        if len(models) > 1
        else "none",
        checkpoint_config=short_path(info.config_path) if info.config_path else "none",
        draws=draws,
        temperatures=", ".join(f"{t:g}" for t in temperatures),
        seed=seed,
        irn_images_per_dataset=max_images or "all",
        per_image_csv=short_path(per_image_path),
    )
    markdown = render_markdown(table, scale, record, _conditions(profile, draws, irn, max_images, temperatures))
    csv_path, md_path = write_table(table, markdown, out_dir / f"table1_x{scale}")
    return Table1(scale, table, markdown, per_image_path, csv_path, md_path, record)
