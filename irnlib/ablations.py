"""Ablations (notebook 03): what each of IRN's design choices buys.

Variants trained with the same budget each (:func:`variants`):

- the objective: full; without L_forw (no LR guidance); without L_back; without L_distr;
- the downsampling: Haar wavelet (the paper) vs. a learned invertible 1×1 mixing of the
  space-to-depth channels initialised at random (:class:`irnlib.network.LearnedDownsampling`);
- capacity: 2, 4 and 8 InvBlocks per level.

Conditions at evaluation time (:func:`conditions`): the latent at upscaling (``z ~ N(0, 1)``
as in the paper, ``z = 0``, temperatures 0.5 / 0.8 / 1.2) for the full model, and JPEG
re-encoding of the LR at quality 95 / 90 / 75 before upscaling for the full model and for
Bicubic & Bicubic.

Every measurement goes to a per-image CSV; :func:`ablation_table` computes the table from it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import evaluate as ev
from . import profiles
from .checkpoint import load_checkpoint
from .images import jpeg_round_trip
from .inference import resolve_device
from .network import SCALES
from .paths import atomic_write
from .train import TrainConfig, make_config, train

__all__ = [
    "Variant",
    "Condition",
    "AblationSetup",
    "ablation_setup",
    "variants",
    "conditions",
    "variant_config",
    "train_variants",
    "evaluate_ablations",
    "ablation_table",
    "render_ablation_markdown",
    "plot_ablations",
    "write_tables",
]


@dataclass(frozen=True)
class Variant:
    """A variant of IRN to train: a name, its group and the training-config fields it changes."""

    name: str
    group: str  # "reference", "objective", "downsampling" or "capacity"
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


@dataclass
class AblationSetup:
    """The study's settings: one training budget for every variant, and the test protocol."""

    profile: str  # a profile of irnlib.profiles
    scale: int
    train: TrainConfig  # the full model's training configuration; variants change a few fields
    eval_set: str
    eval_crop: int | None  # centre-crop test images to this size (None: whole images)
    eval_images: int | None  # the first N images (None: all)
    draws: int
    data_root: str | None = None
    device: str = "auto"

    def budget(self) -> str:
        t = self.train
        return (f"{t.iterations:,} iterations, batch {t.batch_size} of {t.patch_size}² patches from "
                f"{t.train_set}, lr {t.lr:g}")


def ablation_setup(profile: str = "smoke", scale: int | None = None, **train_overrides) -> AblationSetup:
    """Settings of the study: the profile's :class:`irnlib.profiles.AblationPlan`.

    ``smoke`` trains tiny versions on the CPU in about 20 s each at ×2 (100 iterations of
    4 patches of 32² from the embedded photographs) and tests on 160² centre crops of the
    embedded test photographs: the numbers are indicative only (so short a training does not
    reproduce the paper's ordering of the variants). ``paper`` is the real study on a GPU
    with the paper's data and settings: ×4 (default), DIV2K, batch 16 of 144², and 100k
    iterations per variant (a fifth of the paper's schedule, learning-rate milestones scaled
    alike), tested on the DIV2K validation set at full size.
    """
    plan = profiles.get(profile).ablation
    scale = scale or plan.scale
    config = make_config(profile, scale=scale, **plan.train)
    setup = AblationSetup(profile, scale, config, plan.eval_set, plan.eval_crop, plan.eval_images, plan.draws)
    if train_overrides:
        setup.train = dataclasses.replace(setup.train, **train_overrides)
    setup.data_root, setup.device = setup.train.data_root, setup.train.device  # tests run where training does
    return setup


def variant_config(setup: AblationSetup, variant: Variant, runs_dir=None) -> TrainConfig:
    """The training configuration of ``variant``: the study's, with the variant's changes."""
    name = f"ablation_{setup.profile}_x{setup.scale}_{variant.slug}"
    return dataclasses.replace(setup.train, run_name=name, runs_dir=runs_dir, **variant.changes)


def train_variants(setup: AblationSetup, chosen: list[Variant], runs_dir=None, fresh: bool = False) -> dict[str, Path]:
    """Train every variant (or finish it: finished runs are reused); name -> run folder."""
    from tqdm.auto import tqdm

    runs = {}
    for variant in tqdm(chosen, desc="training variants"):
        config = variant_config(setup, variant, runs_dir)
        runs[variant.name] = train(config, resume=not fresh)
    return runs


def evaluate_ablations(setup: AblationSetup, runs: dict[str, Path], chosen: list[Variant], tests: list[Condition],
                       seed: int = 0) -> pd.DataFrame:
    """Per-image, per-draw metrics of every variant (paper condition) and of every condition.

    The full model is measured under every condition, the other variants under the paper's
    (the first condition); Bicubic & Bicubic under the paper's and the JPEG conditions.
    Columns: ``variant, group, condition, temperature, jpeg_quality`` + :data:`irnlib.evaluate.CSV_COLUMNS`.
    """
    from tqdm.auto import tqdm

    device = resolve_device(setup.device)
    pairs = ev.evaluation_pairs(setup.eval_set, setup.scale, setup.data_root, crop=setup.eval_crop, count=setup.eval_images)
    jobs = []  # (variant name, group, condition, network or None)
    for variant in chosen:
        net = load_checkpoint(runs[variant.name] / f"IRN_x{setup.scale}.pth", map_location=device)
        for condition in tests if variant.name == FULL else tests[:1]:
            jobs.append((variant.name, variant.group, condition, net))
    for condition in tests:
        if condition.temperature == 1.0:  # the bicubic pipeline has no latent
            jobs.append(("Bicubic & Bicubic", "baseline", condition, None))
    rows = []
    for name, group, condition, net in tqdm(jobs, desc="evaluating"):
        for pair in pairs:
            draws = setup.draws if net is not None else 1
            for row in ev.evaluate_pair(
                pair, setup.scale, setup.eval_set, net=net, draws=draws, seed=seed,
                temperature=condition.temperature, lr_transform=condition.lr_transform(), checkpoint=name,
            ):  # fmt: skip
                rows.append({"variant": name, "group": group, "condition": condition.name,
                             "temperature": condition.temperature, "jpeg_quality": condition.jpeg_quality, **row})
    return pd.DataFrame(rows)


def ablation_table(per_image: pd.DataFrame, setup: AblationSetup) -> pd.DataFrame:
    """One row per (variant, condition, with its temperature and JPEG quality): means over
    images and draws, and the spread over draws.

    ``psnr_y``/``ssim_y`` measure the reconstruction against the HR (border = scale);
    ``lr_psnr_y`` IRN's LR against the bicubic LR; ``draw_spread_db`` is the standard
    deviation, over the draws of z, of the image-averaged Y-PSNR (not Table 1's spread,
    which is a range: see :mod:`irnlib.evaluate`).
    """
    keys = ["group", "variant", "condition"]
    rows = []
    for (group, variant, condition), part in per_image.groupby(keys, sort=False):
        per_draw = part.groupby("draw")["psnr_y"].mean()
        rows.append({
            "group": group, "variant": variant, "condition": condition,
            "temperature": part["temperature"].iloc[0], "jpeg_quality": part["jpeg_quality"].iloc[0],
            "psnr_y": part["psnr_y"].mean(), "ssim_y": part["ssim_y"].mean(),
            "lr_psnr_y": part["lr_psnr_y"].mean(), "draw_spread_db": per_draw.std(ddof=0) if len(per_draw) > 1 else 0.0,
            "images": part["image"].nunique(), "draws": part["draw"].nunique(),
            "budget": "—" if group == "baseline" else setup.budget(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _fmt(value, digits):
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def render_ablation_markdown(table: pd.DataFrame, setup: AblationSetup, record: dict) -> str:
    """The ablation table as a Markdown page: conditions on top, the numbers, provenance."""
    label = profiles.get(setup.profile).ablation.label
    lines = [
        f"# Ablations of IRN ×{setup.scale} ({label})",
        "",
        f"Every IRN variant measured by this kit, trained with the same budget: **{setup.budget()}**. "
        f"Test set: {setup.eval_set}" + (f", {setup.eval_crop}² centre crops" if setup.eval_crop else "")
        + f"; Y-channel PSNR/SSIM, border {setup.scale}; mean over {setup.draws} draws of z. "
        "The paper's networks train for 500,000 iterations; none of these numbers is the paper's.",
        "",
        "| group | variant | condition | Y-PSNR (dB) | SSIM | LR vs bicubic LR, Y-PSNR (dB) | spread over draws (dB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table.itertuples():
        lines.append(f"| {r.group} | {r.variant} | {r.condition} | {_fmt(r.psnr_y, 2)} | {_fmt(r.ssim_y, 4)} | "
                     f"{_fmt(r.lr_psnr_y, 2)} | {_fmt(r.draw_spread_db, 3)} |")
    lines += ["", "**Provenance**", ""] + [f"- {k}: {v}" for k, v in record.items()]
    return "\n".join(lines) + "\n"


def plot_ablations(table: pd.DataFrame, setup: AblationSetup):
    """Three panels: variants under the paper's condition, the temperature sweep, JPEG robustness."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    paper = table[table["condition"] == PAPER_CONDITION]
    colors = {"reference": "tab:blue", "objective": "tab:orange", "downsampling": "tab:green",
              "capacity": "tab:purple", "baseline": "tab:gray"}
    axes[0].barh(paper["variant"], paper["psnr_y"], color=[colors.get(g, "k") for g in paper["group"]])
    axes[0].invert_yaxis()
    axes[0].set_xlabel("Y-PSNR of the reconstruction (dB)")
    axes[0].set_title("variants (z ~ N(0, 1))")
    full = table[(table["variant"] == FULL) & table["jpeg_quality"].isna()].sort_values("temperature")
    axes[1].plot(full["temperature"], full["psnr_y"], "o-")
    axes[1].set_xlabel("temperature of z at upscaling")
    axes[1].set_ylabel("Y-PSNR (dB)")
    axes[1].set_title("the latent at upscaling (full model)")
    for variant, marker in ((FULL, "o-"), ("Bicubic & Bicubic", "s--")):
        part = table[(table["variant"] == variant) & ((table["condition"] == PAPER_CONDITION) | table["jpeg_quality"].notna())]
        axes[2].plot(part["jpeg_quality"].fillna(100).astype(float), part["psnr_y"], marker, label=variant)
    axes[2].set_xlabel("JPEG quality of the LR (100 = lossless PNG)")
    axes[2].set_ylabel("Y-PSNR (dB)")
    axes[2].invert_xaxis()
    axes[2].legend()
    axes[2].set_title("robustness to JPEG'd LR images")
    tag = f" — {setup.profile} run, indicative only" if profiles.get(setup.profile).indicative else ""
    fig.suptitle(f"IRN ×{setup.scale} ablations ({setup.budget()}){tag}", fontsize=10)
    fig.tight_layout()
    return fig


def write_tables(per_image: pd.DataFrame, setup: AblationSetup, out_dir, record: dict) -> tuple[pd.DataFrame, str, dict]:
    """Write ``ablations_per_image.csv``, then build ``ablations.csv`` and ``.md`` from it (read back).

    Returns the table, its Markdown and the paths written; every file is written atomically.
    """
    out_dir = Path(out_dir)
    paths = {"per_image": ev.write_csv(per_image, out_dir / "ablations_per_image.csv")}
    table = ablation_table(pd.read_csv(paths["per_image"]), setup)
    table.insert(0, "run_id", record.get("run_id", ""))
    paths["csv"] = ev.write_csv(table, out_dir / "ablations.csv")
    markdown = render_ablation_markdown(table, setup, record)
    paths["md"] = atomic_write(out_dir / "ablations.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    return table, markdown, paths
