"""The profiles: what a run of the kit trains, evaluates, on which data, with which checkpoints.

A profile is the one parameter of the main job (``irn reproduce --profile P``; every
notebook's ``profile``). This module is the only place that knows what a profile means;
everything else asks it (:func:`get`, :func:`default_datasets`, :func:`irnlib.protocol.weights.choose_weights`,
...). Adding a profile is adding one :class:`Profile` below and listing it in
:data:`PROFILES`.

- ``smoke``: the whole path on a laptop CPU in minutes: tiny trainings on the embedded
  photographs, Table 1 on the embedded test photographs (plus Set5/Set14/BSD100 when on
  disk) with the smoke-trained checkpoints; every number is labelled indicative.
- ``quick``: the kit's CPU training recipe, which trained the reference models in
  ``models/`` (before it kept a weight average; hours on a CPU, minutes on a GPU); its
  deviations from the paper are listed in each model's card.
- ``paper``: the paper's experiment, for a GPU: DIV2K, 500k iterations, the official
  checkpoints in ``data/pretrained/``, the paper's five test sets, the real ablation study.
"""

from __future__ import annotations

from dataclasses import dataclass

from irnlib.data.folders import available_datasets
from irnlib.data.registry import PAPER_TEST, PAPER_TRAINING
from irnlib.runtime.paths import data_root

__all__ = [
    "AblationPlan",
    "Profile",
    "SMOKE",
    "QUICK",
    "PAPER",
    "PROFILES",
    "get",
    "run_name",
    "default_datasets",
    "datasets_to_prepare",
]


@dataclass(frozen=True)
class AblationPlan:
    """The ablation study of a profile (notebook 03): one training budget, one test protocol.

    ``train`` holds :class:`irnlib.train.TrainConfig` fields set on top of the profile's
    training for every variant; the variants then change a few more
    (:func:`irnlib.experiments.ablations.variants`).
    """

    scale: int  # default scale of the study
    train: dict
    eval_set: str
    eval_crop: int | None  # centre-crop test images to this size (None: whole images)
    eval_images: int | None  # the first N test images (None: all)
    draws: int  # draws of z per test image
    label: str  # how the page's title describes the study (the steps per run are added to it)
    seeds: tuple[int, ...] = (0, 1)  # each variant is trained once per seed (the ordering is checked per seed)


@dataclass(frozen=True)
class Profile:
    """Everything a profile decides.

    Attributes
    ----------
    name : str
    train : dict
        :class:`irnlib.train.TrainConfig` fields that differ from its defaults (which are the
        paper's ×4 run).
    data : tuple of str or None
        What notebook 00 prepares; ``None``: every registered dataset on disk.
    test_sets : tuple of str
        Table 1's test sets, always listed (a missing one shows how to get it).
    optional_test_sets : tuple of str
        Table 1's further test sets, used only when on disk.
    irn_images : int or None
        Table 1 measures IRN on at most this many images per test set (``None``: all).
    draws : int
        Table 1's draws of z per image (the paper: 5).
    official_checkpoints : bool
        Table 1 uses the released ``data/pretrained/IRN_x{s}.pth``; otherwise the
        checkpoints this profile's training (notebook 01) exports.
    indicative : bool
        A quick check, not the paper's experiment: every table and figure says so.
    table_note : str
        The opening of Table 1's conditions paragraph.
    ablation : AblationPlan
    """

    name: str
    train: dict
    data: tuple[str, ...] | None
    test_sets: tuple[str, ...]
    optional_test_sets: tuple[str, ...]
    irn_images: int | None
    draws: int
    official_checkpoints: bool
    indicative: bool
    table_note: str
    ablation: AblationPlan


SMOKE = Profile(
    name="smoke",
    train=dict(
        train_set="embedded-train",
        val_set="embedded-test",
        val_crop=128,
        patch_size=48,
        batch_size=4,
        iterations=60,  # shows the training path in about a minute; models/ holds trained models
        lr=5e-4,  # 2.5× the paper's, halved twice near the end
        lr_milestones=(42, 51),
        log_every=5,
        val_every=20,
        checkpoint_every=20,
        keep_every=0,
        num_workers=0,  # a batch takes ~5 ms to make: workers would only compete for the 2 cores
        channels_last=True,  # a CPU profile: faster there (benchmarks/README.md), same mathematics
        sampling="stream",  # 8 images, batch 4: epochs of 2 batches would add nothing; keeps its stream
    ),
    data=None,
    test_sets=("embedded-test",),
    optional_test_sets=("Set5", "Set14", "BSD100"),
    irn_images=5,
    draws=2,  # the paper: 5; two keep the main job near 10 minutes and still show the spread over z
    official_checkpoints=False,
    indicative=True,
    table_note=(
        "**Smoke profile** - a quick check of the pipeline on CPU, not the paper's experiment: the embedded "
        "test photographs (not in the paper) and whichever of Set5/Set14/BSD100 are on disk"
    ),
    ablation=AblationPlan(
        scale=2,
        # 14 tiny runs (7 variants, 2 seeds) in about 3 minutes on 2 cores
        train=dict(
            patch_size=24,
            iterations=30,
            lr_milestones=(22, 27),
            val_every=30,
            checkpoint_every=30,
            log_every=10,
            progress=False,
        ),
        eval_set="embedded-test",
        eval_crop=160,
        eval_images=None,
        draws=2,  # as Table 1's smoke draws: keeps the main job within 10 minutes
        label="SMOKE RUN: tiny trainings on a CPU, indicative only",
    ),
)

PAPER = Profile(
    name="paper",
    train={},  # TrainConfig's defaults are the paper's (DIV2K, 500k iterations, b16, p144)
    data=(*PAPER_TRAINING, *PAPER_TEST),
    test_sets=PAPER_TEST,
    optional_test_sets=(),
    irn_images=None,
    draws=5,
    official_checkpoints=True,
    indicative=False,
    table_note="**Paper profile** - the paper's test sets and protocol.",
    ablation=AblationPlan(
        scale=4,
        # a fifth of the paper's schedule, learning-rate milestones scaled alike
        train=dict(
            iterations=100_000,
            lr_milestones=(40_000, 60_000, 80_000, 90_000),
            val_every=10_000,
            checkpoint_every=5_000,
            keep_every=0,
        ),
        eval_set="DIV2K_valid_HR",
        eval_crop=None,
        eval_images=None,
        draws=5,
        label="the paper's data and settings, a shortened schedule",
    ),
)

QUICK = Profile(
    name="quick",
    # The kit's CPU recipe for its reference models (models/): the paper's network, objective
    # and test protocol; what differs is listed in each model's card. Small steps won on a
    # 2-core CPU (docs/benchmarks_log.md, "Recipe research"): 4 × 48² patches reached Set5 ×2
    # 30.0 dB in 400 steps (8 min on one core) where 6 × 72² needed 800 steps (1.7 h).
    train=dict(
        train_set="T91+BSD200",  # the classical 291 images (the paper: DIV2K's 800)
        val_set="Set5",
        val_crop=None,
        sampling="stream",  # one random image per sample (the kit's stream); the LR target is the official one
        patch_size=48,
        batch_size=4,  # 4 × 48²: 1/36 of the paper's 16 × 144² pixels per step
        iterations=4_400,
        lr=5e-4,  # 2.5× the paper's; 1e-3 was no better at 400 steps and less steady
        lr_milestones=(3_000, 3_800, 4_200),  # halved three times near the end, as the paper's schedule does
        # validate and export the weights' moving average: without it short runs swing by 1-3 dB
        # between checks (docs/benchmarks_log.md, "Recipe research"); models/ predates it
        ema_decay=0.95,
        # the kit's robustness recipe (issue 27; results/panel/cause_measured.md): a quarter of the
        # samples synthetic flat/saturated content, and no L_back gradient where the LR is clamped
        synthetic_fraction=0.25,
        quantize_gradient="clipped",
        log_every=50,
        val_every=500,
        checkpoint_every=100,
        keep_every=2_000,
        num_workers=0,
        channels_last=True,
    ),
    data=("T91", "BSD200", "Set5", "Set14", "BSD100"),
    test_sets=("embedded-test", "Set5"),
    optional_test_sets=("Set14", "BSD100"),
    irn_images=None,
    draws=5,
    official_checkpoints=False,
    indicative=True,
    table_note=(
        "**Quick profile** - the kit's CPU training recipe (T91 + BSD200, small batches, hours not days): "
        "the paper's network and protocol, a far shorter training than the paper's"
    ),
    ablation=AblationPlan(
        scale=2,
        # every variant and seed: the quick recipe for 1,000 steps (8-20 minutes a run on 2 cores);
        # at 500 steps the study could not separate two of the paper's claims (docs/results.md)
        train=dict(
            iterations=1_000,
            lr_milestones=(700, 850, 950),
            val_every=250,
            checkpoint_every=100,
            keep_every=0,
            progress=False,
        ),
        eval_set="Set5",
        eval_crop=None,
        eval_images=None,
        draws=5,
        label="the kit's CPU recipe",
    ),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, QUICK, PAPER)}


def get(profile: str | Profile) -> Profile:
    """The profile called ``profile`` (a :class:`Profile` passes through).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile]


def run_name(profile: str, scale: int) -> str:
    """The default name of a training run: ``"<profile>_x<scale>"`` (its folder under ``runs/``)."""
    return f"{profile}_x{scale}"


def default_datasets(profile: str, root=None) -> list[str]:
    """Table 1's test sets: the profile's own, then its optional ones that are on disk."""
    p = get(profile)
    return list(p.test_sets) + [d for d in p.optional_test_sets if (data_root(root) / d).is_dir()]


def datasets_to_prepare(profile: str, root=None) -> list[str]:
    """What notebook 00 checks and prepares: the profile's data, or every dataset on disk."""

    p = get(profile)
    return list(p.data) if p.data is not None else available_datasets(root)
