"""The ablations' results (notebook 03), computed from the per-image CSV of
:func:`irnlib.experiments.ablations.evaluate_ablations`: the table of every variant and
condition (:func:`ablation_table`), the paper's ordering checked seed by seed
(:func:`ordering_table`, judged by :mod:`irnlib.experiments.verdicts`, optionally beside the
committed longer study's verdicts), the Markdown page (:func:`render_ablation_markdown`), the
figure (:func:`plot_ablations`), and all of them written at once (:func:`write_tables`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from irnlib.experiments.ablations import FULL, PAPER_CONDITION, AblationSetup
from irnlib.experiments.verdicts import (
    DEFERRED,
    RULE,
    Study,
    compare_verdicts,
    describe_study,
    margin_fields,
    read_study,
    study_iterations,
)
from irnlib.protocol import evaluate as ev
from irnlib.protocol import profiles
from irnlib.protocol.summary import summarize_draws
from irnlib.runtime.markdown import Footnotes, markdown_table
from irnlib.runtime.paths import atomic_write, short_path

__all__ = [
    "ABLATION_KEYS",
    "image_subset",
    "ablation_table",
    "CLAIMS",
    "claim_label",
    "ordering_table",
    "render_ablation_markdown",
    "plot_ablations",
    "write_tables",
]

ABLATION_KEYS = ["group", "variant", "condition"]
NOT_TRAINED_HERE = "not trained by this study (see its card)"


def image_subset(setup: AblationSetup) -> str:
    """The test images, in words: ``"embedded-test, the first 3 images, 160² centre crops"``."""
    images = f"the first {setup.eval_images} images" if setup.eval_images else "every image"
    return f"{setup.eval_set}, {images}" + (f", {setup.eval_crop}² centre crops" if setup.eval_crop else "")


def _text_values(part: pd.DataFrame, column: str) -> list[str]:
    """The distinct non-empty values of a text column, in order (none if the CSV predates it)."""
    return [str(v) for v in dict.fromkeys(part[column].dropna()) if str(v)] if column in part else []


def _ablation_row(part: pd.DataFrame, per_seed: pd.DataFrame, setup: AblationSetup) -> dict:
    """One row of :func:`ablation_table`: ``part`` its per-image lines, ``per_seed`` their summary by training seed."""
    group = part["group"].iloc[0]
    seeds = per_seed.dropna(subset=["train_seed"]).sort_values("train_seed")
    by_seed = seeds if len(seeds) else per_seed  # a model not trained here: one "seed"
    psnr = list(by_seed["psnr_y"])
    training = _text_values(part, "training")
    fallback = {"baseline": "—", "model": NOT_TRAINED_HERE}.get(group, setup.budget())
    return {
        "group": group, "variant": part["variant"].iloc[0], "condition": part["condition"].iloc[0],
        "temperature": part["temperature"].iloc[0], "jpeg_quality": part["jpeg_quality"].iloc[0],
        "psnr_y": float(np.mean(psnr)), "ssim_y": by_seed["ssim_y"].mean(), "lr_psnr_y": by_seed["lr_psnr_y"].mean(),
        "psnr_y_std": float(by_seed["psnr_y_std"].mean()), "seeds": len(seeds),
        "psnr_y_by_seed": " / ".join(f"{v:.2f}" for v in psnr) if len(seeds) else "",
        "seed_range_db": float(max(psnr) - min(psnr)) if len(seeds) else np.nan,
        "diverged": _divergences(part), "images": int(by_seed["images"].max()), "draws": int(by_seed["draws"].max()),
        "training": training[0] if training else fallback, "weights": "; ".join(_text_values(part, "weights")),
        "image_subset": image_subset(setup),
    }  # fmt: skip


def ablation_table(per_image: pd.DataFrame, setup: AblationSetup) -> pd.DataFrame:
    """One row per (variant, condition, with its temperature and JPEG quality): means over
    training seeds, images and draws, and how much the draws and the seeds vary.

    Per training seed, :func:`irnlib.protocol.summary.summarize_draws` gives each metric's mean
    over draws of its image average and the standard deviation over draws; a row is the mean of
    those over seeds. ``psnr_y``/``ssim_y`` measure the reconstruction against the HR (border =
    scale); ``lr_psnr_y`` IRN's LR against the bicubic LR; ``psnr_y_std`` is the standard
    deviation, over the draws of z, of the image-averaged Y-PSNR (averaged over seeds; Table 1
    gives the range instead, ``psnr_y_range``); ``psnr_y_by_seed`` lists each training seed's
    Y-PSNR and ``seed_range_db`` is their range (max - min). What a row measured: ``weights``
    (the checkpoints, ``; ``-separated), ``training`` and ``image_subset``.
    """
    frame = per_image if "train_seed" in per_image else per_image.assign(train_seed=np.nan)
    summary = summarize_draws(frame, ABLATION_KEYS + ["train_seed"], ("psnr_y", "ssim_y", "lr_psnr_y"), ("psnr_y",))
    parts = dict(iter(frame.groupby(ABLATION_KEYS, sort=False)))
    rows = [_ablation_row(parts[key], per_seed, setup) for key, per_seed in summary.groupby(ABLATION_KEYS, sort=False)]
    return pd.DataFrame(rows)


def _divergences(part: pd.DataFrame) -> str:
    """ "seed 1 at iteration 232" for each training seed of ``part`` whose run diverged ("" if none)."""
    if "diverged_at" not in part:
        return ""
    runs = part.dropna(subset=["diverged_at"]).drop_duplicates("train_seed")
    return ", ".join(f"seed {r.train_seed:g} at iteration {r.diverged_at:.0f}" for r in runs.itertuples())


# The paper's claims, (better, worse): each design choice helps, more InvBlocks beat fewer.
CLAIMS = [(FULL, v) for v in ("without L_forw", "without L_back", "without L_distr", "learned 1x1 downsampling")]
CLAIMS += [(FULL, "4 InvBlocks per level"), ("4 InvBlocks per level", "2 InvBlocks per level")]
ORDERING_COLUMNS = ["claim", "better", "worse", "seeds", "margins_by_seed", "margin_db", "spread_db", "held", "holds",
                    "verdict"]  # fmt: skip


def claim_label(better: str, worse: str) -> str:
    """How a claim of :data:`CLAIMS` is written: ``"IRN (full) > without L_distr"`` (the full model
    named by its block count where the claim is about capacity)."""
    label = f"{better} (8 InvBlocks per level)" if better == FULL and worse.endswith("per level") else better
    return f"{label} > {worse}"


def ordering_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Does the paper's ordering of the variants hold at the study's budget?

    The paper's claim is that each design choice helps: the full model beats every objective
    and downsampling variant, and more InvBlocks beat fewer (:data:`CLAIMS`). Each comparison
    is made seed by seed (both networks trained with the same seed) under the paper's
    condition, and judged by :func:`irnlib.experiments.verdicts.verdict`: "holds",
    "reversed" or "not separable at this budget". Columns :data:`ORDERING_COLUMNS`: ``claim``,
    ``better``, ``worse`` (the two variants) and :func:`irnlib.experiments.verdicts.margin_fields`
    (``seeds``, ``margins_by_seed``, ``margin_db`` their mean, ``spread_db`` their max − min,
    ``held``, ``holds`` e.g. ``"1 of 2"``, ``verdict``).
    """
    trained = per_image[(per_image["condition"] == PAPER_CONDITION) & per_image["train_seed"].notna()]
    means = trained.groupby(["variant", "train_seed"])["psnr_y"].mean()
    present = set(trained["variant"])
    rows = []
    for better, worse in CLAIMS:
        if better not in present or worse not in present:
            continue
        margins = means[better] - means[worse]  # by training seed; NaN where one of them lacks that seed
        rows.append({"claim": claim_label(better, worse), "better": better, "worse": worse, **margin_fields(margins)})
    return pd.DataFrame(rows, columns=ORDERING_COLUMNS)


def _fmt(value, digits):
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


ABLATION_HEADER = ["group", "variant", "condition", "Y-PSNR (dB)", "per training seed (dB)", "SSIM",
                   "LR vs bicubic LR, Y-PSNR (dB)", "Y-PSNR std over draws (dB)"]  # fmt: skip


def _row_note(row) -> str:
    """What a model not trained by the study is, from its ``weights`` and ``training`` fields ("" for others)."""
    if row.get("group") != "model":
        return ""
    weights, training = (row.get(k, "") for k in ("weights", "training"))
    parts = [f"weights `{weights}`" if isinstance(weights, str) and weights else ""]
    parts.append(f"trained: {training}" if isinstance(training, str) and training else "")
    return "; ".join(p for p in parts if p)


def _intro(table: pd.DataFrame, setup: AblationSetup, labels: dict[str, str]) -> str:
    conditioned = table.loc[
        table["group"].isin(["model", "reference"]) & (table["condition"] != PAPER_CONDITION), "variant"
    ]
    crops = f", {setup.eval_crop}² centre crops" if setup.eval_crop else ""
    model = (
        f"The test-time conditions (latent, JPEG) are measured on **{labels[conditioned.iloc[0]]}**. "
        if len(conditioned)
        else ""
    )
    return (
        f"Every trained variant measured by this kit, trained with the same budget: **{setup.budget()}** "
        f"(one run per seed; the Y-PSNR is their mean). Test set: {setup.eval_set}{crops}; Y-channel PSNR/SSIM, "
        f"border {setup.scale}; mean over {setup.draws} draws of z. "
        + model
        + "The paper's networks train for 500,000 iterations; none of these numbers is the paper's."
    )


def _variant_lines(table: pd.DataFrame, setup: AblationSetup, labels: dict[str, str], notes: Footnotes) -> list[str]:
    """The table of every variant and condition, its footnotes, where the trained runs are, which diverged."""
    rows = [
        [r.group, labels[r.variant], r.condition, _fmt(r.psnr_y, 2), r.psnr_y_by_seed or "–", _fmt(r.ssim_y, 4),
         _fmt(r.lr_psnr_y, 2), _fmt(r.psnr_y_std, 3)]
        for r in table.itertuples()
    ]  # fmt: skip
    lines = markdown_table(ABLATION_HEADER, rows, notes)
    lines += [
        "",
        f"Trained variants: each seed's weights are in its run folder, `ablation_{setup.profile}_x{setup.scale}_"
        "<variant>_seed<seed>/` (the exported model, or `checkpoints/last.pt` of a run that diverged); the "
        "table's CSV lists them in its `weights` field.",
    ]
    diverged = table[table["diverged"].fillna("") != ""] if "diverged" in table else table.iloc[:0]
    if len(diverged):
        lines += [""] + [
            f"- **{r.variant}: training diverged** ({r.diverged}); that run is measured with the last "
            f"checkpoint written before (`checkpoints/last.pt`, every {setup.train.checkpoint_every} "
            "iterations)."
            for r in diverged.drop_duplicates("variant").itertuples()
        ]
    return lines


def _signed(value) -> str:
    return "–" if pd.isna(value) or value == "" else f"{float(value):+.2f}"


def _committed_cell(r) -> str:
    """The committed study's verdict on a claim with its mean margin and seed spread (dB)."""
    if not isinstance(r.committed_verdict, str) or not r.committed_verdict:
        return "not in that study"
    return f"{r.committed_verdict} ({_signed(r.committed_margin_db)}; spread {_fmt(float(r.committed_spread_db), 2)})"


def _ordering_lines(ordering: pd.DataFrame, setup: AblationSetup, committed: Study | None) -> list[str]:
    """The paper's claims, seed by seed, with the rule of the verdicts and, when ``committed`` is
    given, that study's verdict beside each (or, when its files are absent, one line that says so)."""
    lines = ["", "**Does the paper's ordering hold at this budget?** (seed by seed, z ~ N(0, 1); the paper: "
             "every design choice helps)", "", f"Verdicts: {RULE}", ""]  # fmt: skip
    header = ["claim", "mean margin (dB)", "per seed (dB)", "seed spread (dB)", "holds for", "verdict"]
    rows = [[r.claim, _signed(r.margin_db), r.margins_by_seed or "–", _fmt(r.spread_db, 2), f"{r.holds} seeds",
             r.verdict] for r in ordering.itertuples()]  # fmt: skip
    if committed is None or not committed.found or "committed_verdict" not in ordering:
        lines += markdown_table(header, rows)
        if committed is not None and not committed.found:
            lines += ["", f"The committed longer study (`{short_path(committed.folder)}/ablations_per_image.csv`) "
                      "is not in this checkout: its verdicts cannot be shown beside these."]  # fmt: skip
        return lines
    notes = Footnotes()
    deferred = ordering["verdict"].str.contains(DEFERRED, regex=False).any()
    mark = notes.mark(f"{describe_study(committed)}; its verdicts recomputed by the rule above from its "
                      "`ablations_per_image.csv`." + (" It trained longer than this run: a verdict of this run's "
                      "that it does not share is one this budget cannot make, and reads \"not separable at this "
                      "budget\" with both findings." if deferred else ""))  # fmt: skip
    header += [f"committed study{mark}: verdict (mean margin; spread, dB)", f"agreement ({setup.profile} vs it)"]
    for row, r in zip(rows, ordering.itertuples()):
        row += [_committed_cell(r), r.agreement or "–"]
    return lines + markdown_table(header, rows, notes)


def render_ablation_markdown(
    table: pd.DataFrame, ordering: pd.DataFrame, setup: AblationSetup, record: dict, committed: Study | None = None
) -> str:
    """The ablation page in Markdown: what was trained, the numbers (a model not trained by the
    study under a short label, with a footnote for its weights and training), the paper's
    ordering checked seed by seed (beside ``committed``'s verdicts when given: ``ordering`` then
    comes from :func:`irnlib.experiments.verdicts.compare_verdicts`), provenance."""
    label = f"{profiles.get(setup.profile).ablation.label}, {setup.train.iterations:,} steps per variant and seed"
    notes = Footnotes()
    labels = {r["variant"]: r["variant"] + notes.mark(_row_note(r)) for _, r in table.iterrows()}
    lines = [f"# Ablations of IRN ×{setup.scale} ({label})", "", _intro(table, setup, labels), ""]
    lines += _variant_lines(table, setup, labels, notes)
    lines += _ordering_lines(ordering, setup, committed)
    lines += ["", "**Provenance**", ""] + [f"- {k}: {v}" for k, v in record.items()]
    return "\n".join(lines) + "\n"


def plot_ablations(table: pd.DataFrame, setup: AblationSetup):
    """Three panels: trained variants under the paper's condition (bars: mean over seeds,
    dots: each seed), the temperature sweep and JPEG robustness (on the conditions' model)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    paper = table[(table["condition"] == PAPER_CONDITION) & (table["group"] != "model")].reset_index(drop=True)
    colors = {
        "reference": "tab:blue",
        "objective": "tab:orange",
        "downsampling": "tab:green",
        "capacity": "tab:purple",
        "baseline": "tab:gray",
    }
    axes[0].barh(paper["variant"], paper["psnr_y"], color=[colors.get(g, "k") for g in paper["group"]])
    for i, by_seed in enumerate(paper["psnr_y_by_seed"].fillna("")):
        values = [float(v) for v in str(by_seed).split(" / ") if v]
        axes[0].plot(values, [i] * len(values), "k.", markersize=5)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("Y-PSNR of the reconstruction (dB); dots: each training seed")
    axes[0].set_title("trained variants (z ~ N(0, 1))")
    latent = table[table["group"].isin(["model", "reference"]) & table["jpeg_quality"].isna()]
    model = latent.loc[latent["group"] == "model", "variant"]
    name = model.iloc[0] if len(model) else FULL
    curve = latent[latent["variant"] == name].sort_values("temperature")
    axes[1].plot(curve["temperature"], curve["psnr_y"], "o-")
    axes[1].set_xlabel("temperature of z at upscaling")
    axes[1].set_ylabel("Y-PSNR (dB)")
    axes[1].set_title("the latent at upscaling")
    for variant, marker in ((name, "o-"), ("Bicubic & Bicubic", "s--")):
        part = table[
            (table["variant"] == variant) & ((table["condition"] == PAPER_CONDITION) | table["jpeg_quality"].notna())
        ]
        axes[2].plot(
            part["jpeg_quality"].fillna(100).astype(float),
            part["psnr_y"],
            marker,
            label="IRN" if variant == name else variant,
        )
    axes[2].set_xlabel("JPEG quality of the LR (100: lossless)")
    axes[2].set_ylabel("Y-PSNR (dB)")
    axes[2].invert_xaxis()
    axes[2].legend()
    axes[2].set_title("robustness to JPEG'd LR images")
    tag = f" — {setup.profile} run, indicative only" if profiles.get(setup.profile).indicative else ""
    fig.suptitle(f"IRN ×{setup.scale} ablations ({setup.budget()}){tag}", fontsize=10)
    # the model's description can be long (a kit reference's card): a caption below, not a title
    training = _text_values(latent[latent["variant"] == name], "training")
    caption = f"Latent and JPEG panels: {name}" + (f" ({training[0]})" if training else "")
    fig.text(0.5, 0.01, textwrap.fill(caption, 160), ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _committed_study(committed_dir, out_dir: Path) -> Study | None:
    """The study to set beside this one (None: none asked for, or it is the one being written)."""
    if committed_dir is None or Path(committed_dir).resolve() == out_dir.resolve():
        return None
    return read_study(committed_dir)


def write_tables(
    per_image: pd.DataFrame, setup: AblationSetup, out_dir, record: dict, committed_dir=None
) -> tuple[pd.DataFrame, str, dict]:
    """Write ``ablations_per_image.csv``, then build ``ablations.csv``, ``ablation_ordering.csv``
    and ``ablations.md`` from it (read back).

    ``committed_dir`` (e.g. :data:`irnlib.experiments.verdicts.COMMITTED_STUDY`): a finished
    study whose verdicts, recomputed from its per-image CSV, are set beside this run's
    (:func:`irnlib.experiments.verdicts.compare_verdicts`: ``committed_*`` and ``agreement``
    fields of the ordering CSV); if its files are absent the page says so once. None (default),
    or ``out_dir`` itself: no comparison. Returns the table, its Markdown and the paths
    written; every file is written atomically.
    """
    out_dir = Path(out_dir)
    committed = _committed_study(committed_dir, out_dir)  # read before this study's files are written
    paths = {"per_image": ev.write_csv(per_image, out_dir / "ablations_per_image.csv")}
    written = pd.read_csv(paths["per_image"])
    table = ablation_table(written, setup)
    table.insert(0, "run_id", record.get("run_id", ""))
    paths["csv"] = ev.write_csv(table, out_dir / "ablations.csv")
    ordering = ordering_table(written)
    if committed is not None:
        theirs = ordering_table(committed.per_image) if committed.found else None
        longer = study_iterations(committed)
        # a fine-tuned study (init_from) trains on top of a model: not a shorter version of that study
        shorter = longer is not None and not setup.train.init_from and setup.train.iterations < longer
        ordering = compare_verdicts(ordering, theirs, committed, run_label=setup.profile, shorter=shorter)
    paths["ordering"] = ev.write_csv(ordering, out_dir / "ablation_ordering.csv")
    markdown = render_ablation_markdown(table, ordering, setup, record, committed)
    paths["md"] = atomic_write(out_dir / "ablations.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    return table, markdown, paths
