"""Ablations (notebook 03): what each of IRN's design choices buys.

Variants trained with the same budget each (:func:`variants`):

- the objective: full; without L_forw (no LR guidance); without L_back; without L_distr;
- the downsampling: Haar wavelet (the paper) vs. a learned invertible 1×1 mixing of the
  space-to-depth channels initialised at random (:class:`irnlib.model.network.LearnedDownsampling`);
- capacity: 2, 4 and 8 InvBlocks per level.

Every variant is trained once per seed of the plan (two by default), so that the table can
say whether the paper's ordering of the variants holds at that budget or is within the
seed-to-seed noise (:func:`ordering_table`).

Conditions at evaluation time (:func:`conditions`): the latent at upscaling (``z ~ N(0, 1)``
as in the paper, ``z = 0``, temperatures 0.5 / 0.8 / 1.2), and JPEG re-encoding of the LR at
quality 95 / 90 / 75 before upscaling, for Bicubic & Bicubic and for the best trained IRN the
kit has (:func:`condition_model`): the official checkpoint, else the kit's reference model
(``models/``), else the study's own full model.

Every measurement goes to a per-image CSV; :func:`ablation_table` computes the table from it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from irnlib.imaging.images import jpeg_round_trip
from irnlib.model.checkpoint import describe_checkpoint, load_checkpoint
from irnlib.model.network import SCALES
from irnlib.protocol import evaluate as ev
from irnlib.protocol import profiles
from irnlib.protocol.weights import choose_weights, exported_weights, weights_kind
from irnlib.runtime.device import resolve_device
from irnlib.runtime.paths import atomic_write, short_path
from irnlib.train import TrainConfig, TrainingDiverged, make_config, train

__all__ = [
    "Variant",
    "Condition",
    "AblationSetup",
    "ablation_setup",
    "variants",
    "conditions",
    "condition_model",
    "variant_config",
    "train_variants",
    "diverged_at",
    "trained_model",
    "evaluate_ablations",
    "ablation_table",
    "ordering_table",
    "render_ablation_markdown",
    "plot_ablations",
    "write_tables",
]


@dataclass(frozen=True)
class Variant:
    """A variant of IRN to train: a name, its group and the training-config fields it changes."""

    name: str
    group: str  # "reference", "objective", "downsampling", "capacity" ("model": a model not trained here)
    changes: dict = field(default_factory=dict, hash=False)  # TrainConfig field -> value

    @property
    def slug(self) -> str:
        """File-system name, e.g. ``no_l_forw``."""
        return "".join(c if c.isalnum() else "_" for c in self.name.lower()).strip("_")


@dataclass(frozen=True)
class Condition:
    """How a trained network is used at test time: the latent's temperature and the LR's fate."""

    name: str
    temperature: float = 1.0
    jpeg_quality: int | None = None  # re-encode the LR as JPEG before upscaling

    def lr_transform(self):
        return None if self.jpeg_quality is None else functools.partial(jpeg_round_trip, quality=self.jpeg_quality)


FULL = "IRN (full)"
PAPER_CONDITION = "z ~ N(0, 1)"  # the paper's test-time condition


def variants(scale: int) -> list[Variant]:
    """The trained variants at ``scale``; the first is the full (paper) model."""
    levels = SCALES[scale]
    return [
        Variant(FULL, "reference"),
        Variant("without L_forw", "objective", {"lambda_forw": 0.0}),
        Variant("without L_back", "objective", {"lambda_back": 0.0}),
        Variant("without L_distr", "objective", {"lambda_distr": 0.0}),
        Variant("learned 1x1 downsampling", "downsampling", {"downsampling": "learned"}),
        Variant("2 InvBlocks per level", "capacity", {"block_num": [2] * levels}),
        Variant("4 InvBlocks per level", "capacity", {"block_num": [4] * levels}),
    ]


def conditions(temperatures=(0.0, 0.5, 0.8, 1.2), jpeg_qualities=(95, 90, 75)) -> list[Condition]:
    """Test-time conditions: the paper's (first), then other temperatures, then JPEG'd LRs."""
    out = [Condition(PAPER_CONDITION)]
    out += [Condition("z = 0" if t == 0 else f"z temperature {t:g}", temperature=t) for t in temperatures]
    out += [Condition(f"LR as JPEG q{q}", jpeg_quality=q) for q in jpeg_qualities]
    return out


def condition_model(scale: int) -> tuple[str, Path] | None:
    """The model the test-time conditions are measured on, if the kit has one at ``scale``:
    ``(label, checkpoint)`` of the official ``data/pretrained/IRN_x{s}.pth``, else of the
    kit's reference model (``models/kit_reference_x{s}``); None if neither is there (the
    study then uses its own full model, seed of the first run)."""
    path = choose_weights("rescale", scale)  # the same choice as the command line and the explorer
    if not path.is_file():
        return None
    if weights_kind(path, scale) == "official":
        return f"IRN (official checkpoint, {short_path(path)})", path
    return f"IRN (kit reference, {describe_checkpoint(path).training})", path


@dataclass
class AblationSetup:
    """The study's settings: one training budget for every variant and seed, and the test protocol."""

    profile: str  # a profile of irnlib.protocol.profiles
    scale: int
    train: TrainConfig  # the full model's training configuration; variants change a few fields
    eval_set: str
    eval_crop: int | None  # centre-crop test images to this size (None: whole images)
    eval_images: int | None  # the first N images (None: all)
    draws: int
    seeds: tuple[int, ...] = (0, 1)  # every variant is trained once per seed
    data_root: str | None = None
    device: str = "auto"

    def budget(self) -> str:
        t = self.train
        return (
            f"{t.iterations:,} iterations, batch {t.batch_size} of {t.patch_size}² patches from "
            f"{t.train_set}, lr {t.lr:g}, seeds {', '.join(map(str, self.seeds))}"
        )


def ablation_setup(profile: str = "smoke", scale: int | None = None, **train_overrides) -> AblationSetup:
    """Settings of the study: the profile's :class:`irnlib.protocol.profiles.AblationPlan`.

    ``smoke`` trains tiny versions on the CPU in about 12 s each at ×2 (30 iterations of
    4 patches of 24² from the embedded photographs, two seeds) and tests on 160² centre crops
    of the embedded test photographs: the numbers are indicative only (so short a training
    does not reproduce the paper's ordering of the variants, and the page says so).
    ``paper`` is the real study on a GPU with the paper's data and settings: ×4 (default),
    DIV2K, batch 16 of 144², and 100k iterations per variant and seed (a fifth of the
    paper's schedule, learning-rate milestones scaled alike), tested on the DIV2K validation
    set at full size.
    """
    plan = profiles.get(profile).ablation
    scale = scale or plan.scale
    config = make_config(profile, scale=scale, **plan.train)
    setup = AblationSetup(
        profile, scale, config, plan.eval_set, plan.eval_crop, plan.eval_images, plan.draws, tuple(plan.seeds)
    )
    if train_overrides:
        setup.train = dataclasses.replace(setup.train, **train_overrides)
    setup.data_root, setup.device = setup.train.data_root, setup.train.device  # tests run where training does
    return setup


def variant_config(setup: AblationSetup, variant: Variant, seed: int | None = None, runs_dir=None) -> TrainConfig:
    """The training configuration of ``variant`` with training seed ``seed`` (None: the
    study's first): the study's, with the variant's changes."""
    seed = setup.seeds[0] if seed is None else seed
    name = f"ablation_{setup.profile}_x{setup.scale}_{variant.slug}_seed{seed}"
    return dataclasses.replace(setup.train, run_name=name, runs_dir=runs_dir, seed=seed, **variant.changes)


def train_variants(
    setup: AblationSetup, chosen: list[Variant], runs_dir=None, fresh: bool = False
) -> dict[tuple[str, int], Path]:
    """Train every variant once per seed (or finish it: finished runs are reused);
    ``(name, seed)`` -> run folder.

    A run that diverges does not stop the study: its folder says so (``provenance.json``,
    status ``"diverged"``) and :func:`evaluate_ablations` measures its last good checkpoint.
    """
    from tqdm.auto import tqdm

    jobs = [(variant, seed) for variant in chosen for seed in setup.seeds]
    runs = {}
    for variant, seed in tqdm(jobs, desc="training variants"):
        config = variant_config(setup, variant, seed, runs_dir)
        try:
            runs[variant.name, seed] = train(config, resume=not fresh)
        except TrainingDiverged as err:  # a result of the ablation, not a failure of the study
            tqdm.write(f"{variant.name}, seed {seed}: {err}")
            runs[variant.name, seed] = config.run_dir
    return runs


def diverged_at(run_dir) -> int | None:
    """The iteration at which the training in ``run_dir`` diverged, or None if it did not."""
    record = Path(run_dir) / "provenance.json"
    status = json.loads(record.read_text()) if record.is_file() else {}
    return int(status["diverged_at"]) if status.get("status") == "diverged" else None


def trained_model(run_dir, scale: int) -> Path:
    """The model of a study's run: its exported ``IRN_x{scale}.pth``, or for a run that
    diverged the last checkpoint written before that (``checkpoints/last.pt``, when there is one)."""
    last = Path(run_dir) / "checkpoints" / "last.pt"
    return last if diverged_at(run_dir) is not None and last.is_file() else exported_weights(run_dir, scale)


def evaluate_ablations(
    setup: AblationSetup,
    runs: dict[tuple[str, int], Path],
    chosen: list[Variant],
    tests: list[Condition],
    seed: int = 0,
) -> pd.DataFrame:
    """Per-image, per-draw metrics of every trained variant and of every condition.

    Every trained variant and seed is measured under the paper's condition (the first of
    ``tests``); every condition on :func:`condition_model` (or, without one, on the study's
    full model of its first seed) and, where it has no latent, on Bicubic & Bicubic. ``seed``
    seeds the draws of z. Columns: ``variant, group, train_seed, condition, temperature,
    jpeg_quality`` + :data:`irnlib.protocol.evaluate.CSV_COLUMNS` (``train_seed`` is empty for models
    not trained by the study).
    """
    from tqdm.auto import tqdm

    device = resolve_device(setup.device)
    pairs = ev.evaluation_pairs(
        setup.eval_set, setup.scale, setup.data_root, crop=setup.eval_crop, count=setup.eval_images
    )
    jobs = []  # (variant name, group, training seed or None, condition, network or None, diverged at or None)
    for variant in chosen:
        for train_seed in setup.seeds:
            net = load_checkpoint(trained_model(runs[variant.name, train_seed], setup.scale), map_location=device)
            jobs.append(
                (variant.name, variant.group, train_seed, tests[0], net, diverged_at(runs[variant.name, train_seed]))
            )
    model = condition_model(setup.scale)
    if model is not None:
        label, path = model
        net = load_checkpoint(path, map_location=device)
        jobs += [(label, "model", None, condition, net, None) for condition in tests]
    elif any(v.name == FULL for v in chosen):
        *_, net, diverged = next(job for job in jobs if job[0] == FULL)
        jobs += [(FULL, "reference", setup.seeds[0], condition, net, diverged) for condition in tests[1:]]
    for condition in tests:
        if condition.temperature == 1.0:  # the bicubic pipeline has no latent
            jobs.append(("Bicubic & Bicubic", "baseline", None, condition, None, None))
    rows = []
    for name, group, train_seed, condition, net, diverged in tqdm(jobs, desc="evaluating"):
        for pair in pairs:
            draws = setup.draws if net is not None else 1
            for row in ev.evaluate_pair(
                pair, setup.scale, setup.eval_set, net=net, draws=draws, seed=seed,
                temperature=condition.temperature, lr_transform=condition.lr_transform(), checkpoint=name,
            ):  # fmt: skip
                rows.append(
                    {
                        "variant": name,
                        "group": group,
                        "train_seed": train_seed,
                        "diverged_at": diverged,
                        "condition": condition.name,
                        "temperature": condition.temperature,
                        "jpeg_quality": condition.jpeg_quality,
                        **row,
                    }
                )
    return pd.DataFrame(rows)


def ablation_table(per_image: pd.DataFrame, setup: AblationSetup) -> pd.DataFrame:
    """One row per (variant, condition, with its temperature and JPEG quality): means over
    training seeds, images and draws, and the spread over draws and over seeds.

    ``psnr_y``/``ssim_y`` measure the reconstruction against the HR (border = scale);
    ``lr_psnr_y`` IRN's LR against the bicubic LR; ``draw_spread_db`` is the standard
    deviation, over the draws of z, of the image-averaged Y-PSNR (averaged over seeds; not
    Table 1's spread, which is a range: see :mod:`irnlib.protocol.evaluate`); ``psnr_y_by_seed`` lists
    each training seed's Y-PSNR and ``seed_range_db`` is their range (max - min).
    """
    keys = ["group", "variant", "condition"]
    rows = []
    for (group, variant, condition), part in per_image.groupby(keys, sort=False):
        seeds = part["train_seed"].dropna().unique() if "train_seed" in part else []
        by_seed = [part[part["train_seed"] == s] for s in sorted(seeds)] or [part]
        per_seed = [p["psnr_y"].mean() for p in by_seed]
        spreads = [p.groupby("draw")["psnr_y"].mean().std(ddof=0) if p["draw"].nunique() > 1 else 0.0 for p in by_seed]
        rows.append({
            "group": group, "variant": variant, "condition": condition,
            "temperature": part["temperature"].iloc[0], "jpeg_quality": part["jpeg_quality"].iloc[0],
            "psnr_y": float(np.mean(per_seed)), "ssim_y": part["ssim_y"].mean(),
            "lr_psnr_y": part["lr_psnr_y"].mean(), "draw_spread_db": float(np.mean(spreads)),
            "seeds": len(seeds), "psnr_y_by_seed": " / ".join(f"{v:.2f}" for v in per_seed) if len(seeds) else "",
            "seed_range_db": float(max(per_seed) - min(per_seed)) if len(seeds) else np.nan,
            "diverged": _divergences(part),
            "images": part["image"].nunique(), "draws": part["draw"].nunique(),
            "budget": {"baseline": "—", "model": "not trained by this study (see its card)"}.get(group, setup.budget()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _divergences(part: pd.DataFrame) -> str:
    """ "seed 1 at iteration 232" for each training seed of ``part`` whose run diverged ("" if none)."""
    if "diverged_at" not in part:
        return ""
    runs = part.dropna(subset=["diverged_at"]).drop_duplicates("train_seed")
    return ", ".join(f"seed {r.train_seed:g} at iteration {r.diverged_at:.0f}" for r in runs.itertuples())


def ordering_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Does the paper's ordering of the variants hold at the study's budget?

    The paper's claim is that each design choice helps: the full model beats every objective
    and downsampling variant, and more InvBlocks beat fewer. Each comparison is made seed by
    seed (both networks trained with the same seed) under the paper's condition. Columns:
    ``claim``, ``margin_db`` (mean over seeds of the first Y-PSNR minus the second),
    ``holds`` (seeds where it holds, e.g. ``"1 of 2"``) and ``verdict``.
    """
    trained = per_image[(per_image["condition"] == PAPER_CONDITION) & per_image["train_seed"].notna()]
    means = trained.groupby(["variant", "train_seed"])["psnr_y"].mean()
    present = set(trained["variant"])
    claims = [(FULL, v) for v in ("without L_forw", "without L_back", "without L_distr", "learned 1x1 downsampling")]
    claims += [(FULL, "4 InvBlocks per level"), ("4 InvBlocks per level", "2 InvBlocks per level")]
    rows = []
    for better, worse in claims:
        if better not in present or worse not in present:
            continue
        margins = (means[better] - means[worse]).dropna()
        held = int((margins > 0).sum())
        verdict = ("holds for every seed" if held == len(margins) else
                   "reversed for every seed" if held == 0 else "mixed: within the seed-to-seed noise")  # fmt: skip
        label = f"{better} (8 InvBlocks per level)" if better == FULL and worse.endswith("per level") else better
        rows.append(
            {
                "claim": f"{label} > {worse}",
                "margin_db": float(margins.mean()),
                "holds": f"{held} of {len(margins)}",
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows, columns=["claim", "margin_db", "holds", "verdict"])


def _fmt(value, digits):
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def render_ablation_markdown(table: pd.DataFrame, ordering: pd.DataFrame, setup: AblationSetup, record: dict) -> str:
    """The ablation page in Markdown: what was trained, the numbers, the paper's ordering
    checked seed by seed, provenance."""
    label = profiles.get(setup.profile).ablation.label
    conditioned = table.loc[
        table["group"].isin(["model", "reference"]) & (table["condition"] != PAPER_CONDITION), "variant"
    ]
    lines = [
        f"# Ablations of IRN ×{setup.scale} ({label})",
        "",
        f"Every trained variant measured by this kit, trained with the same budget: **{setup.budget()}** "
        f"(one run per seed; the Y-PSNR is their mean). Test set: {setup.eval_set}"
        + (f", {setup.eval_crop}² centre crops" if setup.eval_crop else "")
        + f"; Y-channel PSNR/SSIM, border {setup.scale}; mean over {setup.draws} draws of z. "
        + (
            f"The test-time conditions (latent, JPEG) are measured on **{conditioned.iloc[0]}**. "
            if len(conditioned)
            else ""
        )
        + "The paper's networks train for 500,000 iterations; none of these numbers is the paper's.",
        "",
        "| group | variant | condition | Y-PSNR (dB) | per training seed (dB) | SSIM | LR vs bicubic LR, Y-PSNR (dB) "
        "| spread over draws (dB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.group} | {r.variant} | {r.condition} | {_fmt(r.psnr_y, 2)} | {r.psnr_y_by_seed or '–'} | "
            f"{_fmt(r.ssim_y, 4)} | {_fmt(r.lr_psnr_y, 2)} | {_fmt(r.draw_spread_db, 3)} |"
        )
    diverged = table[table["diverged"].fillna("") != ""] if "diverged" in table else table.iloc[:0]
    if len(diverged):
        lines += [""] + [
            f"- **{r.variant}: training diverged** ({r.diverged}); that run is measured with the last "
            f"checkpoint written before (`checkpoints/last.pt`, every {setup.train.checkpoint_every} "
            "iterations)."
            for r in diverged.drop_duplicates("variant").itertuples()
        ]
    lines += [
        "",
        "**Does the paper's ordering hold at this budget?** (seed by seed, z ~ N(0, 1); the paper: "
        "every design choice helps)",
        "",
        "| claim | mean margin (dB) | holds for | verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {r.claim} | {r.margin_db:+.2f} | {r.holds} seeds | {r.verdict} |" for r in ordering.itertuples()]
    lines += ["", "**Provenance**", ""] + [f"- {k}: {v}" for k, v in record.items()]
    return "\n".join(lines) + "\n"


def plot_ablations(table: pd.DataFrame, setup: AblationSetup):
    """Three panels: trained variants under the paper's condition (bars: mean over seeds,
    dots: each seed), the temperature sweep and JPEG robustness (on the conditions' model)."""
    import matplotlib.pyplot as plt

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
    fig.text(0.5, 0.01, textwrap.fill(f"Latent and JPEG panels: {name}", 160), ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def write_tables(
    per_image: pd.DataFrame, setup: AblationSetup, out_dir, record: dict
) -> tuple[pd.DataFrame, str, dict]:
    """Write ``ablations_per_image.csv``, then build ``ablations.csv``, ``ablation_ordering.csv``
    and ``ablations.md`` from it (read back).

    Returns the table, its Markdown and the paths written; every file is written atomically.
    """
    out_dir = Path(out_dir)
    paths = {"per_image": ev.write_csv(per_image, out_dir / "ablations_per_image.csv")}
    written = pd.read_csv(paths["per_image"])
    table = ablation_table(written, setup)
    table.insert(0, "run_id", record.get("run_id", ""))
    paths["csv"] = ev.write_csv(table, out_dir / "ablations.csv")
    ordering = ordering_table(written)
    paths["ordering"] = ev.write_csv(ordering, out_dir / "ablation_ordering.csv")
    markdown = render_ablation_markdown(table, ordering, setup, record)
    paths["md"] = atomic_write(out_dir / "ablations.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    return table, markdown, paths
