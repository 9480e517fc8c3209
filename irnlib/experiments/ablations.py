"""Ablations (notebook 03): what each of IRN's design choices buys.

Variants trained with the same budget each (:func:`variants`):

- the objective: full; without L_forw (no LR guidance); without L_back; without L_distr;
- the downsampling: Haar wavelet (the paper) vs. a learned invertible 1×1 mixing of the
  space-to-depth channels initialised at random (:class:`irnlib.model.network.LearnedDownsampling`);
- capacity: 2, 4 and 8 InvBlocks per level.

Every variant is trained once per seed of the plan (two by default), so that the table can
say whether each of the paper's claims about the variants holds at that budget, is reversed, or
is not separable from the seed-to-seed noise
(:func:`irnlib.experiments.ablation_tables.ordering_table`, :mod:`irnlib.experiments.verdicts`).

Conditions at evaluation time (:func:`conditions`): the latent at upscaling (``z ~ N(0, 1)``
as in the paper, ``z = 0``, temperatures 0.5 / 0.8 / 1.2), and JPEG re-encoding of the LR at
quality 95 / 90 / 75 before upscaling, for Bicubic & Bicubic and for the best trained IRN the
kit has (:func:`condition_model`): the official checkpoint, else the kit's reference model
(``models/``), else the study's own full model.

Every measurement goes to a per-image CSV; :mod:`irnlib.experiments.ablation_tables` computes
the tables, the page and the figure from it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from irnlib.imaging.images import jpeg_round_trip
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.checkpoint_info import describe_checkpoint
from irnlib.model.network import SCALES
from irnlib.protocol import evaluate as ev
from irnlib.protocol import profiles
from irnlib.protocol.weights import choose_weights, exported_weights, weights_kind
from irnlib.runtime.device import resolve_device
from irnlib.runtime.paths import short_path
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
FINETUNABLE_GROUPS = ("reference", "objective")  # variants with the trained network's shape
PAPER_CONDITION = "z ~ N(0, 1)"  # the paper's test-time condition


def variants(scale: int, finetuned: bool = False) -> list[Variant]:
    """The trained variants at ``scale``; the first is the full (paper) model.

    ``finetuned``: only those that can start from a trained IRN's weights (the full model and the
    objective's ablations); the others change the network, which the weights would not fit.
    """
    if finetuned:
        return [v for v in variants(scale) if v.group in FINETUNABLE_GROUPS]
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
    ``(label, checkpoint)`` of the official ``data/pretrained/IRN_x{s}.pth`` (``"IRN (official
    checkpoint)"``), else of the kit's reference model (``models/kit_reference_x{s}``, ``"IRN (kit
    reference)"``); None if neither is there (the study then uses its own full model, seed of the
    first run). The label is short: the table's ``weights`` and ``training`` fields say the rest."""
    path = choose_weights("rescale", scale)  # the same choice as the command line and the explorer
    if not path.is_file():
        return None
    if weights_kind(path, scale) == "official":
        return "IRN (official checkpoint)", path
    return "IRN (kit reference)", path


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
        start = f", each fine-tuned from `{t.init_from}`" if t.init_from else ""
        return (
            f"{t.iterations:,} iterations, batch {t.batch_size} of {t.patch_size}² patches from "
            f"{t.train_set}, lr {t.lr:g}, seeds {', '.join(map(str, self.seeds))}{start}"
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

    ``iterations`` among ``train_overrides`` stretches the plan's learning-rate milestones alike
    (unless ``lr_milestones`` is given too). ``init_from=<weights>`` fine-tunes every variant from
    a trained IRN (what a trained model loses when a term of the objective is removed); only the
    variants of :func:`variants` with ``finetuned=True`` fit such weights.
    """
    plan = profiles.get(profile).ablation
    scale = scale or plan.scale
    config = make_config(profile, scale=scale, **plan.train)
    setup = AblationSetup(
        profile, scale, config, plan.eval_set, plan.eval_crop, plan.eval_images, plan.draws, tuple(plan.seeds)
    )
    if "iterations" in train_overrides and "lr_milestones" not in train_overrides:
        stretch = train_overrides["iterations"] / config.iterations  # the plan's schedule, shortened or lengthened
        train_overrides["lr_milestones"] = tuple(round(m * stretch) for m in config.lr_milestones)
    if train_overrides:
        setup.train = dataclasses.replace(setup.train, **train_overrides)
    setup.data_root, setup.device = setup.train.data_root, setup.train.device  # tests run where training does
    return setup


def variant_config(setup: AblationSetup, variant: Variant, seed: int | None = None, runs_dir=None) -> TrainConfig:
    """The training configuration of ``variant`` with training seed ``seed`` (None: the
    study's first): the study's, with the variant's changes."""
    seed = setup.seeds[0] if seed is None else seed
    finetuned = "_finetuned" if setup.train.init_from else ""  # never resumes a from-scratch run
    name = f"ablation_{setup.profile}{finetuned}_x{setup.scale}_{variant.slug}_seed{seed}"
    return dataclasses.replace(setup.train, run_name=name, runs_dir=runs_dir, seed=seed, **variant.changes)


def train_variants(
    setup: AblationSetup, chosen: list[Variant], runs_dir=None, fresh: bool = False
) -> dict[tuple[str, int], Path]:
    """Train every variant once per seed (or finish it: finished runs are reused);
    ``(name, seed)`` -> run folder.

    A run that diverges does not stop the study: its folder says so (``provenance.json``,
    status ``"diverged"``) and :func:`evaluate_ablations` measures its last good checkpoint.
    """
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


@dataclass
class _Job:
    """One network (or Bicubic & Bicubic) under one condition, for :func:`evaluate_ablations`."""

    variant: str
    group: str
    train_seed: int | None
    condition: Condition
    net: object = None  # None: Bicubic & Bicubic
    diverged_at: int | None = None
    weights: str = ""  # the checkpoint's path as shown
    training: str = ""  # how it was trained


def _trained_jobs(setup: AblationSetup, runs, chosen: list[Variant], condition: Condition, device) -> list[_Job]:
    """Every trained variant and seed under ``condition``."""
    jobs = []
    for variant in chosen:
        for seed in setup.seeds:
            run, path = runs[variant.name, seed], trained_model(runs[variant.name, seed], setup.scale)
            net = load_checkpoint(path, map_location=device)
            jobs.append(
                _Job(
                    variant.name,
                    variant.group,
                    seed,
                    condition,
                    net,
                    diverged_at(run),
                    short_path(path),
                    setup.budget(),
                )
            )
    return jobs


def _condition_jobs(setup: AblationSetup, trained: list[_Job], tests: list[Condition], device) -> list[_Job]:
    """Every condition on :func:`condition_model` (else on the study's full model of its first seed)
    and, where it has no latent, on Bicubic & Bicubic."""
    jobs = []
    model = condition_model(setup.scale)
    if model is not None:
        label, path = model
        net, training = load_checkpoint(path, map_location=device), describe_checkpoint(path).training
        jobs += [_Job(label, "model", None, condition, net, None, short_path(path), training) for condition in tests]
    elif any(job.variant == FULL for job in trained):
        full = next(job for job in trained if job.variant == FULL)
        jobs += [dataclasses.replace(full, condition=condition) for condition in tests[1:]]
    for condition in tests:
        if condition.temperature == 1.0:  # the bicubic pipeline has no latent
            jobs.append(_Job("Bicubic & Bicubic", "baseline", None, condition))
    return jobs


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
    seeds the draws of z. Columns: ``variant, group, train_seed, diverged_at, condition,
    temperature, jpeg_quality, weights, training`` + :data:`irnlib.protocol.evaluate.CSV_COLUMNS`
    (``train_seed`` is empty for models not trained by the study).
    """
    device = resolve_device(setup.device)
    pairs = ev.evaluation_pairs(
        setup.eval_set, setup.scale, setup.data_root, crop=setup.eval_crop, count=setup.eval_images
    )
    jobs = _trained_jobs(setup, runs, chosen, tests[0], device)
    jobs += _condition_jobs(setup, jobs, tests, device)
    rows = []
    for job in tqdm(jobs, desc="evaluating"):
        condition = job.condition
        fields = {"variant": job.variant, "group": job.group, "train_seed": job.train_seed,
                  "diverged_at": job.diverged_at, "condition": condition.name, "temperature": condition.temperature,
                  "jpeg_quality": condition.jpeg_quality, "weights": job.weights, "training": job.training}  # fmt: skip
        for pair in pairs:
            rows += [
                {**fields, **row}
                for row in ev.evaluate_pair(
                    pair,
                    setup.scale,
                    setup.eval_set,
                    net=job.net,
                    draws=setup.draws if job.net is not None else 1,
                    seed=seed,
                    temperature=condition.temperature,
                    lr_transform=condition.lr_transform(),
                    checkpoint=job.variant,
                )  # fmt: skip
            ]
    return pd.DataFrame(rows)
