"""A training run's configuration: :class:`TrainConfig`, built from a profile by :func:`make_config`.

A profile's fields come from :mod:`irnlib.protocol.profiles`; :func:`parse_overrides` turns the
command line's ``field=value`` words into typed fields; :data:`RESUMABLE_CHANGES` and
:data:`LEGACY_VALUES` say which settings a resumed run may change and what an older run used.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import torch

from irnlib.data.synthetic import FIRST_KINDS
from irnlib.paper import PAPER_DISTR_LOSS, PAPER_ITERATIONS
from irnlib.protocol import profiles
from irnlib.runtime.paths import results_root
from irnlib.runtime.provenance import native_bf16
from irnlib.training.errors import SettingsError
from irnlib.training.fields import check_fields, check_run_name, show

__all__ = [
    "TrainConfig",
    "RESUMABLE_CHANGES",
    "LEGACY_VALUES",
    "as_trained",
    "resolve_amp",
    "make_config",
    "parse_overrides",
]


@dataclass
class TrainConfig:
    """Everything a training run depends on; the defaults are the paper's ×4 run.

    Build one with :func:`make_config` (a profile plus overrides) or by hand. Sizes are in
    pixels, ``batch_size`` is the *global* batch (split evenly over DDP processes). Every field is
    checked against its allowed range when the configuration is made
    (:data:`irnlib.training.fields.RULES`): a bad one raises :class:`SettingsError` (a
    ``ValueError``) naming the field, its range and the value. ``run_name`` must be one plain
    folder name, so that the run folder stays inside ``runs_dir``.
    """

    profile: str = "paper"  # the profile this configuration started from (for the record)
    scale: int = 4  # 2, 4 or 8
    block_num: list[int] | None = None  # InvBlocks per Haar level; None -> [8] * log2(scale)
    downsampling: str = "haar"  # "haar" (the paper) or "learned" (the ablation, see network.py)
    # data
    train_set: str = "DIV2K_train_HR"  # a dataset name under the data root, or "embedded-train"
    val_set: str = "DIV2K_valid_HR"
    val_images: int | None = None  # validate on the first N >= 1 images only (None: all)
    # centre-crop validation HR images to this size (None: whole); at least 11·scale (SSIM's window on the LR)
    val_crop: int | None = None
    data_root: str | None = None  # None: $IRN_DATA or <repo>/data
    patch_size: int = 144  # HR patch side
    batch_size: int = 16  # global batch
    augment: bool = True  # random flips and 90° rotations
    # How samples are made (irnlib.data.patches.TrainingPatches). "epoch": the official sampling,
    # each epoch a fresh order of the images (a function of (seed, epoch)), last incomplete
    # batch dropped; "stream": a random image per sample, with replacement.
    sampling: str = "epoch"
    # "image": the official LR target, MATLAB bicubic of the whole image cropped scale-aligned
    # (and the official rule for awkward image sizes); "patch": the kit's earlier target, the
    # bicubic LR of the patch itself (differs in a 2-pixel LR frame), crops anywhere.
    lr_target: str = "image"
    # The kit's robustness recipe (off in the paper): this fraction of the samples is a synthetic
    # patch of flat saturated colour fields, hard edges, saturated gradients, strokes or clipped
    # highlights (irnlib.data.synthetic), content the photographs of the training sets lack.
    synthetic_fraction: float = 0.0
    # the kinds of synthetic patch, drawn uniformly, so a kind named twice comes twice as often
    # (irnlib.data.synthetic.SYNTHETIC_KINDS; the default, FIRST_KINDS, is the first robust
    # recipe's; "smooth" adds gentle ramps)
    synthetic_kinds: tuple[str, ...] = FIRST_KINDS
    # synthetic kinds (among synthetic_kinds) whose patches train the forward terms only (L_forw,
    # L_distr, L_stress, L_range): their L_back weight is 0, so they teach the downscaler to keep
    # their LR in range without teaching the upscaler to read z on them (the kit's; none: all of L_back)
    forward_only_kinds: tuple[str, ...] = ()
    # ... and those that train the LR only (L_forw, L_range, and L_forw inside L_stress): weight 0
    # in L_back and L_distr, so nothing about their latent is asked (the kit's; none by default)
    lr_only_kinds: tuple[str, ...] = ()
    # ... and those whose L_back weighs heavy_back_weight instead of 1 (the kit's; none by default):
    # smooth content, where the upscaler must cancel the drawn z
    heavy_back_kinds: tuple[str, ...] = ()
    heavy_back_weight: float = 1.0
    # ... and those whose L_distr weight is 0 (also inside L_stress): their latent is not held near 0,
    # which makes a drawn z a large change on smooth content (docs/models.md; the kit's; none by default)
    free_latent_kinds: tuple[str, ...] = ()
    # the synthetic patches' LR target: their own bicubic LR, "bicubic", or that clipped to [0, 1],
    # "clipped", which L_range does not fight at hard saturated edges (the kit's; photographs keep lr_target)
    synthetic_lr: str = "bicubic"
    num_workers: int = 4  # DataLoader worker processes per training process (0: load in it)
    # objective (a weight of 0 switches its term off)
    lambda_forw: float | None = None  # λ1; None -> scale²
    lambda_back: float = 1.0  # λ2
    lambda_distr: float = 1.0  # λ3
    gaussian_scale: float = 1.0  # z' ~ N(0, gaussian_scale²) in the backward pass
    # The 8-bit quantiser's gradient in L_back (irnlib.model.network.quantize): "straight" (the
    # official release: passed through also where the clamp cuts the LR off) or "clipped" (the
    # kit's: 0 outside [0, 1], so L_back cannot push the LR further out of range)
    quantize_gradient: str = "straight"
    # L_distr's form: "sum_of_squares" (the official release: λ3 · mean_b Σ z², smallest at z = 0)
    # or "unit_kl" (the kit's: λ3 · mean_b Σ KL(N(0, m) ‖ N(0, 1)), m the image's mean z², smallest
    # when the latent has the unit scale of the z' drawn at test time) or "unit_hinge" (the kit's:
    # λ3 · mean_b Σ max(|z| − 1, 0)², zero within the draw's standard deviation; see objective.py)
    distr_loss: str = PAPER_DISTR_LOSS
    # A curriculum on L_distr (the kit's; the paper has none, 0 and 0): its weight is 0 for the
    # first `distr_off_iterations` steps, then grows linearly to λ3 over `distr_ramp_iterations`
    # steps (see distr_factor). Early on L_distr holds the reconstruction back (benchmarks/README.md).
    distr_off_iterations: int = 0
    distr_ramp_iterations: int = 0
    # The kit's stress term (off in the paper, lambda_stress = 0): L_forw and L_distr once more, on
    # the batch moved by stress_eps per value the way that makes them grow fastest (one signed-
    # gradient step), weighted by lambda_stress. An image and its neighbour within stress_eps
    # (default one 8-bit level) must give the same LR and a latent of the same scale (objective.py).
    lambda_stress: float = 0.0
    stress_eps: float = 1 / 255
    # Where that step starts: "zero" (at the batch itself) or "random" (a random point within
    # stress_eps, the step 1.25 · stress_eps, as Wong et al. 2020 do against single-step training
    # that wears off; measured here to hold the latent worse); one more forward and backward pass
    # a step (objective.py).
    stress_start: str = "zero"
    # The kit's range term (off in the paper, lambda_range = 0): lambda_range · Σ of the LR's squared
    # excess outside [0, 1] before quantisation, which the 8-bit file clips away (objective.py).
    lambda_range: float = 0.0
    # The kit's grid term (off in the paper, lambda_grid = 0): lambda_grid · the squared norm of
    # L_back's error at each of the s × s pixel positions averaged over grid_block² pixel blocks,
    # less the positions' mean: a fixed pattern of period s that L_back's L1 barely sees on
    # photographs and that is a third of the error on smooth images (objective.py). grid_block is a
    # multiple of the scale that divides patch_size.
    lambda_grid: float = 0.0
    grid_block: int = 16
    # optimisation
    iterations: int = PAPER_ITERATIONS
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-5
    lr_milestones: tuple[int, ...] = (100_000, 200_000, 300_000, 400_000)  # absolute iterations
    lr_gamma: float = 0.5
    warmup_iterations: int = 0  # linear warm-up of the learning rate (the official warmup_iter; off)
    # "kit": factors 1/W, 2/W, .. 1 over the first W steps; "official": what the official
    # release's warm-up really does: 1, 1/W, .., (W-1)/W, then (W-1)/W for good (see lr_factor)
    warmup_rule: str = "kit"
    grad_clip: float = 10.0  # max gradient norm (0: no clipping)
    # Exponential moving average of the weights, w̄ ← d·w̄ + (1 − d)·w after every step (0: off,
    # the paper). When on, validation and the exported model use w̄; the steps are unchanged.
    ema_decay: float = 0.0
    seed: int = 0
    # Start from these weights (an IRN_x{s}.pth of the same architecture, e.g. a kit reference
    # model) instead of random ones: a second stage of training, with a fresh optimiser and
    # schedule. The run records the file's SHA-256.
    init_from: str | None = None
    # bookkeeping
    run_name: str | None = None  # None -> "<profile>_x<scale>"
    runs_dir: str | None = None  # None -> <results>/runs (results/ or $IRN_RESULTS)
    log_every: int = 100
    val_every: int = 5000
    checkpoint_every: int = 5000  # refresh the training state checkpoints/last.pt and the exported weights
    keep_every: int = 50_000  # also keep checkpoints/iter_NNNNNNN.pt (0: never)
    progress: bool = True  # tqdm progress bar
    # device and speed (none of these changes the mathematics; amp changes the arithmetic's precision)
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
    # "off", "bf16" or "fp16" autocast (off until verified on your GPU); "auto": bf16 on a CPU
    # that does it natively (AMX, AVX-512-BF16), else off; resolved when training starts
    # (the run records the choice, so resuming on another kind of CPU is refused, not silent)
    amp: str = "off"
    channels_last: bool = False
    memory_saving: bool = False  # recompute each InvBlock's activations during backward
    tune_allocator: bool = True  # CPU: keep freed memory for reuse (see tune_cpu_allocator)

    def __post_init__(self):
        check_fields(self)  # every field against its allowed range (irnlib.training.fields.RULES)
        self.betas = tuple(self.betas)
        self.lr_milestones = tuple(self.lr_milestones)
        self.synthetic_kinds = tuple(self.synthetic_kinds)
        self.forward_only_kinds, self.lr_only_kinds = tuple(self.forward_only_kinds), tuple(self.lr_only_kinds)
        self.heavy_back_kinds, self.free_latent_kinds = tuple(self.heavy_back_kinds), tuple(self.free_latent_kinds)
        if self.block_num is not None:
            self.block_num = list(self.block_num)
        if self.lambda_forw is None:
            self.lambda_forw = float(self.scale**2)  # λ1 = s² as in the official configs
        if self.run_name is None:
            self.run_name = profiles.run_name(self.profile, self.scale)
            check_run_name(self.run_name)

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<run_name>``."""
        root = Path(self.runs_dir) if self.runs_dir else results_root() / "runs"
        return root / self.run_name


# Fields that may change when a run is resumed: they do not change the mathematics (the
# device and memory layout may change the rounding). The learning-rate milestones are
# absolute iterations, so extending `iterations` continues the same run.
RESUMABLE_CHANGES = {
    "profile", "iterations", "data_root", "num_workers", "run_name", "runs_dir", "log_every", "val_every",
    "checkpoint_every", "keep_every", "progress", "device", "val_set", "val_images", "val_crop",
    "memory_saving", "channels_last", "tune_allocator",
}  # fmt: skip

# What a run saved before a field existed (its config.json, its training state) was trained
# with: resuming such a run with these values continues it exactly.
LEGACY_VALUES = {
    "sampling": "stream",
    "lr_target": "patch",
    "warmup_rule": "kit",
    "ema_decay": 0.0,
    "distr_off_iterations": 0,
    "distr_ramp_iterations": 0,
    "synthetic_fraction": 0.0,
    "quantize_gradient": "straight",
    "distr_loss": PAPER_DISTR_LOSS,
    "lambda_stress": 0.0,
    "stress_eps": 1 / 255,
    "stress_start": "zero",
    "synthetic_kinds": FIRST_KINDS,
    "lambda_range": 0.0,
    "lambda_grid": 0.0,
    "grid_block": 16,
    "forward_only_kinds": (),
    "lr_only_kinds": (),
    "heavy_back_kinds": (),
    "heavy_back_weight": 1.0,
    "free_latent_kinds": (),
    "synthetic_lr": "bicubic",
}


def as_trained(saved: dict) -> dict:
    """A saved run configuration (``config.json``, a training state's) with the :data:`LEGACY_VALUES`
    of the fields it predates: the settings the run was really trained with, as JSON holds them
    (tuples as lists)."""
    return json.loads(json.dumps({**LEGACY_VALUES, **saved}))


def resolve_amp(amp: str, device: torch.device) -> str:
    """``amp`` with ``"auto"`` decided for ``device``: ``"bf16"`` on a CPU with native bf16
    arithmetic (:func:`irnlib.runtime.provenance.native_bf16`), else ``"off"`` (also on CUDA, where
    autocast stays off until verified on your GPU). Other values pass through."""
    if amp != "auto":
        return amp
    return "bf16" if device.type == "cpu" and native_bf16() else "off"


def make_config(profile: str = "smoke", **overrides) -> TrainConfig:
    """A profile's configuration with some fields replaced.

    Parameters
    ----------
    profile : str
        A profile of :mod:`irnlib.protocol.profiles` (its ``train`` fields): ``paper`` is the paper's
        training (DIV2K, 500k iterations of 16 × 144² patches); ``smoke`` takes a few minutes
        on 2 CPU cores (×4, the embedded photographs, 60 iterations of 4 × 48² patches): it
        shows the training path, not a useful model (``quick`` trains those, see ``models/``).
    **overrides
        Any :class:`TrainConfig` field. ``lambda_forw`` and ``run_name`` follow ``scale``
        unless given.

    Raises
    ------
    SettingsError
        A ``ValueError``: for an unknown profile or field, naming the valid ones, or a field
        outside its allowed range (see :class:`TrainConfig`).
    """
    try:
        fields = profiles.get(profile).train
    except ValueError as err:
        raise SettingsError(str(err)) from None
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        shown = [show(name, 40) for name in unknown]
        raise SettingsError(f"unknown TrainConfig field(s) [{', '.join(shown)}]; valid fields: {sorted(names)}")
    return TrainConfig(**{**fields, **overrides, "profile": profile})


def _parse_value(text: str, annotation):
    """Turn ``text`` into a value of type ``annotation`` (int, float, bool, str, tuple, list, Optional)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # X | None
        if text.lower() in ("none", "null", ""):
            return None
        return _parse_value(text, next(a for a in args if a is not type(None)))
    if origin in (tuple, list):
        items = [item.strip(" ()[]") for item in text.split(",")]
        return origin(_parse_value(item, args[0]) for item in items if item)
    if annotation is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            number = float(text)  # 5e5 is fine; a ValueError names the text
        if not number.is_integer():  # 2.5, nan, inf
            raise ValueError(f"expected a whole number, got {text!r}")
        return int(number)
    return annotation(text)


def parse_overrides(pairs: list[str]) -> dict:
    """``["iterations=100", "betas=0.9,0.99", "val_crop=none"]`` -> typed keyword arguments.

    Raises
    ------
    SettingsError
        A ``ValueError``: for a malformed pair, an unknown field or a value of the wrong type,
        on one line. The values' ranges are checked by :class:`TrainConfig`.
    """
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SettingsError(f"override {show(pair)} is not of the form field=value")
        if key not in hints:
            raise SettingsError(f"unknown TrainConfig field {show(key, 40)}; valid fields: {sorted(hints)}")
        if key == "profile":  # make_config's own argument: the command line's --profile
            raise SettingsError(f"override {show(pair)}: choose the profile with --profile, not profile=...")
        try:
            out[key] = _parse_value(value, hints[key])
        except (ValueError, OverflowError) as err:  # OverflowError: int('1e999')
            reason = " ".join(str(err).split())[:160]
            raise SettingsError(f"override {show(pair)}: {reason}") from None
    return out
