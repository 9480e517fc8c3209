"""Two models side by side on the generalisation panel and the test sets: before and after a fix.

:func:`compare_panels` joins two panel CSVs (:mod:`irnlib.experiments.panel`) image by image,
:func:`goal_counts` counts the images failing each of the panel's goals for both, and
:func:`compare_test_sets` sets the two model cards' measured test sets (``card.json``'s
``measured``) side by side. :func:`write_comparison` writes the three tables as CSV, a Markdown
page with both models' provenance and a figure of the per-image margins over bicubic. A model
without a card (a run of an ablation study, say) is compared on the panel alone.

Command line::

    python -m irnlib.experiments.panel_compare --before OLD/panel_x2.csv OLD/card.json \\
        --after NEW/panel_x2.csv NEW/card.json --out results/panel
    python -m irnlib.experiments.panel_compare --before A/panel_x2.csv --after B/panel_x2.csv --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from irnlib.experiments.panel import GOALS
from irnlib.protocol import evaluate
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import atomic_write, save_figure

__all__ = ["FLAGS", "compare_panels", "goal_counts", "compare_test_sets", "comparison_markdown", "write_comparison"]

FLAGS = [flag for flag, _ in GOALS]
_PER_IMAGE = ["psnr_gap_db", "worst_block_irn", "worst_block_bicubic", "lr_min", "lr_max", "z_max"]


def compare_panels(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per image measured in both panels (same scale): ``<column>_before`` and
    ``<column>_after`` for the margin over bicubic, worst blocks, LR range, ``|z|`` and each flag.

    Raises
    ------
    ValueError
        If the panels are of different scales or share no image.
    """
    scales = set(before["scale"]) | set(after["scale"])
    if len(scales) != 1:
        raise ValueError(f"compare_panels: the panels are of scales {sorted(scales)}, compare one scale at a time")
    keep = ["image", "scale", *_PER_IMAGE, *FLAGS]
    joined = before[keep].merge(after[keep], on=["image", "scale"], suffixes=("_before", "_after"))
    if joined.empty:
        raise ValueError("compare_panels: the two panels share no image")
    return joined


def goal_counts(joined: pd.DataFrame) -> pd.DataFrame:
    """Per goal of :data:`irnlib.experiments.panel.GOALS`: images failing it before and after, and which
    fail after; plus the median margin over bicubic (dB) before and after."""
    rows = []
    for flag, goal in GOALS:
        failing_after = joined.loc[joined[f"{flag}_after"], "image"].tolist()
        rows.append(
            dict(goal=goal, flag=flag, failing_before=int(joined[f"{flag}_before"].sum()),
                 failing_after=len(failing_after), which_after=", ".join(failing_after), images=len(joined))
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.attrs["median_margin_before"] = float(joined["psnr_gap_db_before"].median())
    frame.attrs["median_margin_after"] = float(joined["psnr_gap_db_after"].median())
    return frame


def compare_test_sets(before_card: dict, after_card: dict) -> pd.DataFrame:
    """The test sets both cards measured: IRN and bicubic Y-PSNR (dB) and the draws, before and after."""
    keep = ["dataset", "images", "draws", "irn_psnr_y", "bicubic_psnr_y", "margin_psnr_y"]
    before = pd.DataFrame(before_card["measured"])[keep]
    after = pd.DataFrame(after_card["measured"])[keep]
    joined = before.merge(after, on=["dataset", "images"], suffixes=("_before", "_after"))
    joined["irn_change_db"] = joined["irn_psnr_y_after"] - joined["irn_psnr_y_before"]
    return joined


def _card_line(card: dict, which: str) -> str:
    if "panel_csv" in card:  # no model card: the panel's own files say which model
        return f"- {which}: the panel `{card['panel_csv']}` (model and provenance: the Markdown page beside it)"
    training = card.get("training", {})
    return (
        f"- {which}: `{card.get('file')}` SHA-256 `{card.get('sha256', '?')[:16]}…`, "
        f"{training.get('iterations_done', '?')} iterations of this stage, commit {training.get('commit', '?')}"
    )


def comparison_markdown(
    goals: pd.DataFrame, test_sets: pd.DataFrame | None, scale: int, cards: tuple[dict, dict]
) -> str:
    """The before/after page: goals, median margin, test sets (``None``: not both models have a card)
    and both models' provenance (a card, or ``{"panel_csv": path}`` for a model without one)."""
    lines = [f"# Before and after, ×{scale}: the generalisation panel and the test sets", ""]
    rows = [[r.goal, f"{r.failing_before} of {r.images}", f"{r.failing_after} of {r.images}", r.which_after or "none"]
            for r in goals.itertuples()]  # fmt: skip
    rows.append(["median IRN − bicubic (dB)", f"{goals.attrs['median_margin_before']:+.2f}",
                 f"{goals.attrs['median_margin_after']:+.2f}", ""])  # fmt: skip
    lines += markdown_table(["Panel goal", "before: failing", "after: failing", "which, after"], rows)
    if test_sets is None:
        lines += ["", "Test sets: not compared (not both models have a card with measured test sets)."]
    else:
        lines += ["", "Test sets (Y-PSNR dB, the paper's protocol, as each model card measured them):", ""]
        rows = [
            [r.dataset, str(r.images), f"{r.irn_psnr_y_before:.2f}", f"{r.irn_psnr_y_after:.2f}",
             f"{r.irn_change_db:+.2f}", f"{r.bicubic_psnr_y_after:.2f}", f"{r.draws_before} / {r.draws_after}"]
            for r in test_sets.itertuples()
        ]  # fmt: skip
        header = ["test set", "images", "IRN before", "IRN after", "change", "Bicubic & Bicubic", "draws of z"]
        lines += markdown_table(header, rows)
    lines += ["", "## Models", "", _card_line(cards[0], "before"), _card_line(cards[1], "after")]
    return "\n".join(lines) + "\n"


def margins_figure(joined: pd.DataFrame) -> Figure:
    """Each image's IRN − bicubic Y-PSNR before and after, as horizontal bars (flagged images marked)."""
    joined = joined.sort_values("psnr_gap_db_after")
    fig = Figure(figsize=(7, 0.28 * len(joined) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(joined))
    ax.barh(y - 0.2, joined["psnr_gap_db_before"].clip(-30, 30), height=0.4, label="before", color="0.6")
    ax.barh(y + 0.2, joined["psnr_gap_db_after"].clip(-30, 30), height=0.4, label="after", color="C0")
    flagged = joined[[f"{f}_after" for f in FLAGS]].any(axis=1)
    ax.set_yticks(y, [f"{name} *" if bad else name for name, bad in zip(joined["image"], flagged)], fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("IRN − Bicubic & Bicubic, Y-PSNR dB (clipped to ±30; * still flagged after)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _card(card_json, panel_csv) -> dict:
    return json.loads(Path(card_json).read_text()) if card_json is not None else {"panel_csv": str(panel_csv)}


def write_comparison(before_csv, before_card, after_csv, after_card, out) -> dict[str, Path]:
    """Compare two models (panel CSV and ``card.json`` each; a card may be ``None``) and write
    ``before_after_x{s}.{csv,md,png}`` (per image; the goals and, with both cards, the test sets in
    the Markdown page) into ``out``; returns the paths."""
    cards = (_card(before_card, before_csv), _card(after_card, after_csv))
    joined = compare_panels(pd.read_csv(before_csv), pd.read_csv(after_csv))
    scale = int(joined["scale"].iloc[0])
    with_cards = before_card is not None and after_card is not None
    goals, test_sets = goal_counts(joined), compare_test_sets(*cards) if with_cards else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    page = comparison_markdown(goals, test_sets, scale, cards)
    return {
        "csv": evaluate.write_csv(joined, out / f"before_after_x{scale}.csv"),
        "markdown": atomic_write(out / f"before_after_x{scale}.md", lambda tmp: Path(tmp).write_text(page)),
        "figure": save_figure(margins_figure(joined), f"before_after_x{scale}.png", folder=out),
    }


def main(argv=None) -> dict[str, Path]:
    """``python -m irnlib.experiments.panel_compare``."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.panel_compare", description=__doc__.split("\n")[0]
    )
    for which in ("before", "after"):
        parser.add_argument(f"--{which}", nargs="+", metavar="PANEL_CSV [CARD_JSON]", required=True)
    parser.add_argument("--out", default="results/panel")
    args = parser.parse_args(argv)
    for which in ("before", "after"):
        if len(getattr(args, which)) > 2:
            parser.error(f"--{which}: a panel CSV and at most one card.json, got {getattr(args, which)}")
    before, after = ([*files, None][:2] for files in (args.before, args.after))
    paths = write_comparison(*before, *after, args.out)
    print(Path(paths["markdown"]).read_text())
    return paths


if __name__ == "__main__":
    main()
